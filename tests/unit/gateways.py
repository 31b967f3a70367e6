"""A worker Gateway wired to one OpenAI-compatible server, without the shared (Dapr) limits:
what the unit tests use to run tasks against the real local model or a test double."""

from __future__ import annotations

from apps.worker.gateway import Gateway
from apps.worker.profiles import Catalog, ModelProfile
from jobrelay.task_catalog import Capability

EMBEDDING_TASKS = ("classify", "embed")
CHAT_TASKS = ("summarize", "extract", "chat")


def gateway_for(
    url: str,
    embedding_model: str = "all-MiniLM-L6-v2",
    chat_model: str = "SmolLM2-135M-Instruct",
    **profile_options: object,
) -> Gateway:
    profiles = {
        "embeddings": ModelProfile.model_validate(
            {
                "name": "embeddings",
                "base_url": url,
                "model": embedding_model,
                "capabilities": [Capability.EMBEDDINGS],
                **profile_options,
            }
        ),
        "chat": ModelProfile.model_validate(
            {
                "name": "chat",
                "base_url": url,
                "model": chat_model,
                "capabilities": [Capability.CHAT],
                "timeout_seconds": 120,
                **profile_options,
            }
        ),
    }
    tasks = {t: ["embeddings"] for t in EMBEDDING_TASKS} | {t: ["chat"] for t in CHAT_TASKS}
    return Gateway(Catalog(profiles=profiles, tasks=tasks), limits=None, max_inflight=8)
