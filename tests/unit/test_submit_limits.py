"""What one submit may carry besides its params: metadata caps (issue 17, Medium 5). The
route answers on the running stack are in tests/integration/test_hardening.py."""

from __future__ import annotations

import pytest

from apps.intake.requests import check_metadata
from apps.intake.settings import IntakeSettings
from jobrelay.errors import ApiError

SETTINGS = IntakeSettings(port=1)


@pytest.mark.parametrize(
    "metadata",
    [
        {"blob": "x" * 600_000},  # the 600 KB, in one value
        {f"k{i}": "v" for i in range(33)},
        {"k" * 65: "v"},
    ],
    ids=["600-KB-value", "33-keys", "65-char-key"],
)
def test_metadata_past_its_caps_is_413_metadata_too_large(metadata: dict[str, str]) -> None:
    with pytest.raises(ApiError) as refused:
        check_metadata(metadata, SETTINGS)
    assert (refused.value.status, refused.value.code) == (413, "metadata_too_large")
    assert "xxx" not in refused.value.message  # the cap is named, never the data


def test_metadata_within_its_caps_passes() -> None:
    check_metadata({f"k{i}": "v" * 512 for i in range(32)}, SETTINGS)
