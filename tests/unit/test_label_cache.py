"""classify's label cache (apps/worker/gateway.py) is per tenant, so one tenant's token usage
says nothing about another's labels; labels are bounded in length (issue 17, Low). The model
is the scripted test double (tests/doubles/scripted_model.py) over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import ValidationError

from apps.worker.gateway import Gateway
from apps.worker.model_client import ModelClient
from apps.worker.tasks import classify
from jobrelay.contract import JobInput, JobRecord
from jobrelay.task_catalog import parse_params
from tests.doubles.scripted_model import ScriptedModel, scripted_model
from tests.unit.gateways import gateway_for

LABELS = {"labels": ["merger talks", "layoffs"]}


@pytest.fixture
def double() -> Iterator[ScriptedModel]:
    with scripted_model() as server:
        yield server


@pytest.fixture
async def gateway(double: ScriptedModel) -> AsyncIterator[Gateway]:
    shared = gateway_for(double.url, embedding_model="scripted")
    yield shared
    await shared.close()


async def _label_tokens(gateway: Gateway, tenant: str) -> int:
    record = JobRecord.new("classify", JobInput(text="a memo"), LABELS, {}, tenant=tenant)
    result = await classify.run(record, ModelClient(gateway, "classify", None, 1))
    text_tokens = 2  # "a memo", as the double counts
    return result.usage.prompt_tokens - text_tokens


@pytest.mark.anyio
async def test_another_tenants_labels_are_never_answered_from_the_cache(
    gateway: Gateway,
) -> None:
    assert await _label_tokens(gateway, "acme") > 0
    assert await _label_tokens(gateway, "acme") == 0  # its own labels: cached
    # Same labels, another tenant: embedded again, so its usage cannot reveal acme's.
    assert await _label_tokens(gateway, "globex") > 0


def test_a_label_longer_than_the_cap_is_refused() -> None:
    with pytest.raises(ValidationError, match="at most 200 characters"):
        parse_params("classify", {"labels": ["x" * 201, "y"]})
