"""Publishing to a topic, with concurrent publishes gathered into bulk publishes
(jobrelay.batching): under load, intake's submits each publish a job message at once.

A bulk publish that reports failed entries is followed by a publish of every message of the
batch on its own (the SDK does not say which entries its ids stand for): a message published
twice is harmless, since the worker's claim runs each job once, and one left unpublished
would leave a job that nothing runs.
"""

from __future__ import annotations

from dapr.aio.clients import DaprClient

from jobrelay.batching import Coalescer


class Publisher:
    def __init__(self, dapr: DaprClient, pubsub: str, topic: str) -> None:
        self._dapr = dapr
        self._pubsub = pubsub
        self._topic = topic
        self._batches: Coalescer[str, None] = Coalescer(self._publish_batch)

    async def publish(self, data: str) -> None:
        """Put `data` (JSON) on the topic; a DAPR error if the broker would not take it."""
        await self._batches(data)

    async def _publish_batch(self, batch: list[str]) -> list[BaseException | None]:
        if len(batch) > 1:
            resp = await self._dapr.publish_events(
                self._pubsub, self._topic, batch, data_content_type="application/json"
            )
            if not resp.failed_entries:
                return [None] * len(batch)
        outcomes: list[BaseException | None] = []
        for data in batch:
            try:
                await self._dapr.publish_event(
                    self._pubsub, self._topic, data, data_content_type="application/json"
                )
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes
