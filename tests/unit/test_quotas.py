"""The quota arithmetic (apps/intake/ledger.py) and settings; the shared ledger in the real
state store is tested in tests/integration/test_quotas.py."""

from __future__ import annotations

import pytest

from apps.intake.ledger import WINDOW_SECONDS, Ledger
from apps.intake.settings import QuotaSettings, TenantLimits

T0 = 1_000_000 * WINDOW_SECONDS  # the start of some minute


def _submitted(times: list[float]) -> Ledger:
    ledger = Ledger()
    for t in times:
        ledger = ledger.count_submission(t)
    return ledger


def test_a_fresh_ledger_allows_the_whole_limit() -> None:
    assert Ledger().remaining(T0 + 10, 5) == 5
    assert Ledger().retry_after(T0 + 10, 5) == 0
    assert Ledger().reset_after(T0 + 10) == 0


def test_submissions_in_the_current_minute_count_in_full() -> None:
    ledger = _submitted([T0 + 1, T0 + 2, T0 + 3])
    assert ledger.remaining(T0 + 4, 5) == 2
    assert ledger.remaining(T0 + 4, 3) == 0


def test_the_previous_minute_weighs_by_how_much_of_it_still_overlaps() -> None:
    ledger = _submitted([T0 + 50] * 4)
    # 15 s into the next minute, 45 of the last 60 s are the previous minute: 4 * 0.75 = 3.
    assert ledger.used(T0 + WINDOW_SECONDS + 15) == pytest.approx(3.0)
    assert ledger.remaining(T0 + WINDOW_SECONDS + 15, 5) == 2
    # Two minutes on, nothing is left of it.
    assert ledger.remaining(T0 + 2 * WINDOW_SECONDS + 1, 5) == 5


def test_a_minute_boundary_does_not_double_the_limit() -> None:
    """A fixed window would allow 5 at 0:59 and 5 more at 1:00."""
    ledger = _submitted([T0 + 59] * 5)
    assert ledger.remaining(T0 + WINDOW_SECONDS + 1, 5) == 0


def test_retry_after_is_when_the_previous_minute_has_faded_enough() -> None:
    ledger = _submitted([T0 + 30] * 4).count_submission(T0 + WINDOW_SECONDS + 6)
    now = T0 + WINDOW_SECONDS + 6  # used = 4 * 0.9 + 1 = 4.6 > 4 = room for one under 5
    assert ledger.remaining(now, 5) == 0
    wait = ledger.retry_after(now, 5)
    # Room once 4 * (1 - f) <= 3, at f = 0.25: 15 s into the minute, 9 s from now.
    assert wait == 9
    assert ledger.remaining(now + wait, 5) == 1
    assert ledger.remaining(now + wait - 1, 5) == 0


def test_retry_after_when_this_minute_alone_is_full_reaches_into_the_next() -> None:
    ledger = _submitted([T0 + 10] * 4)
    now = T0 + 20
    wait = ledger.retry_after(now, 4)
    # 40 s to the boundary, then 4 * (1 - g) <= 3 at g = 0.25: 15 s more.
    assert wait == 55
    assert ledger.remaining(now + wait, 4) == 1
    assert ledger.remaining(now + wait - 1, 4) == 0


def test_a_limit_of_one_waits_for_the_whole_next_minute() -> None:
    ledger = _submitted([T0 + 10])
    assert ledger.retry_after(T0 + 10, 1) == 110
    assert ledger.remaining(T0 + 120, 1) == 1


@pytest.mark.parametrize("offset", [0.0, 0.5, 13.7, 59.9])
@pytest.mark.parametrize("count", [1, 3, 7])
def test_retry_after_is_the_first_whole_second_with_room(offset: float, count: int) -> None:
    ledger = _submitted([T0 + offset] * count)
    limit = 3
    wait = ledger.retry_after(T0 + offset, limit)
    if wait:
        assert ledger.remaining(T0 + offset + wait, limit) >= 1
        assert ledger.remaining(T0 + offset + wait - 1, limit) == 0
    else:
        assert ledger.remaining(T0 + offset, limit) >= 1


def test_reset_after_is_when_both_windows_are_empty() -> None:
    ledger = _submitted([T0 + 10])
    assert ledger.reset_after(T0 + 10) == 110
    assert ledger.reset_after(T0 + WINDOW_SECONDS + 10) == 50
    assert ledger.reset_after(T0 + 2 * WINDOW_SECONDS) == 0


def test_waiting_jobs_come_and_go_and_very_old_ones_expire() -> None:
    ledger = Ledger().add_job("a", T0).add_job("b", T0 + 5)
    assert set(ledger.queued) == {"a", "b"}
    assert set(ledger.without({"a"}).queued) == {"b"}
    assert set(ledger.waiting(T0 + 100, lifetime=98).queued) == {"b"}


def test_the_ledger_survives_the_store() -> None:
    ledger = _submitted([T0 + 1, T0 + 2]).add_job("a", T0 + 2)
    assert Ledger.load(ledger.dump()) == ledger
    assert Ledger.load(None) == Ledger()


def test_tenant_overrides_replace_only_the_limits_they_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBRELAY_QUOTA_SUBMISSIONS_PER_MINUTE", "100")
    monkeypatch.setenv(
        "JOBRELAY_QUOTA_TENANTS",
        '{"small": {"queued_jobs": 3}, "trusted": {"submissions_per_minute": null}}',
    )
    settings = QuotaSettings()
    assert settings.limits("anyone") == TenantLimits(submissions_per_minute=100, queued_jobs=2000)
    assert settings.limits("small") == TenantLimits(submissions_per_minute=100, queued_jobs=3)
    assert settings.limits("trusted") == TenantLimits(submissions_per_minute=None, queued_jobs=2000)


def test_quotas_can_be_lifted_by_default_or_for_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRELAY_QUOTA_QUEUED_JOBS", "null")
    assert QuotaSettings().limits("t").queued_jobs is None
    monkeypatch.setenv("JOBRELAY_QUOTA_ENABLED", "false")
    assert QuotaSettings().limits("t") == TenantLimits()


def test_a_zero_limit_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """0 reads as "off" to some and "nothing allowed" to others: neither is guessed."""
    monkeypatch.setenv("JOBRELAY_QUOTA_QUEUED_JOBS", "0")
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        QuotaSettings()


def test_a_submission_merged_after_the_window_moved_on_counts_in_its_own_minute() -> None:
    """A replica writes its charges a moment after it made them: another replica may have
    moved the window on meanwhile, and the late charge must count where it belongs."""
    moved_on = _submitted([T0 + WINDOW_SECONDS + 1])  # another replica, in the next minute
    merged = moved_on.count_submission(T0 + 59.9)
    assert (merged.previous, merged.current) == (1, 1)
    # Older than both windows: it counts nowhere any more.
    assert moved_on.count_submission(T0 - WINDOW_SECONDS) == moved_on
