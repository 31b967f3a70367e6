"""The worker app, in process (tests/unit/routes/conftest.py): it starts on the shipped models
file, with a runner and a model chain for every task, and tells its sidecar what it
subscribes to."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from dapr.aio.clients import DaprClient
from fastapi.testclient import TestClient

from apps.worker.main import create_app
from apps.worker.settings import WorkerSettings
from jobrelay.constants import DEAD_LETTER_TOPIC, JOBS_TOPIC
from jobrelay.lanes import Lanes
from tests.unit.routes.conftest import BASE_URL

Connect = Callable[[], AbstractAsyncContextManager[DaprClient]]


def test_the_worker_starts_and_lists_its_subscriptions(
    connect: Connect,
) -> None:
    app = create_app(WorkerSettings(), connect)
    with TestClient(app, base_url=BASE_URL) as client:
        listed = client.get("/dapr/subscribe").json()

    topics = {s["topic"]: s.get("deadLetterTopic") for s in listed}
    lanes = dict.fromkeys(Lanes().topics(), DEAD_LETTER_TOPIC)
    assert len(lanes) == 12  # 3 priorities x 4 tenant shards by default
    assert topics == lanes | {JOBS_TOPIC: DEAD_LETTER_TOPIC, DEAD_LETTER_TOPIC: None}
