"""How much a job's parameters may ask for: the limits intake checks at submit and the worker
checks again before it runs a job (so a job accepted before a limit was lowered is refused
with the same message, not run).

They protect the shared workers and the operator's model budget from one tenant's job:
an `extract` schema whose validation cost doubles with each `$ref` level, a backtracking
`pattern`, or a `chat` body that asks a hosted model for 100,000 tokens. Set them alike on
intake and the worker (`JOBRELAY_LIMIT_*`); docs/security.md, "Limits", lists each one.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TaskLimits(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBRELAY_LIMIT_", extra="ignore", frozen=True)

    schema_bytes: int = Field(
        default=16 * 1024,
        ge=256,
        description="Largest `extract` schema, as compact JSON. Real extraction schemas are "
        "a few hundred bytes to a few KB.",
    )
    schema_depth: int = Field(
        default=32,
        ge=4,
        le=200,
        description="Deepest nesting of objects and arrays in a schema. Bounded well below "
        "Python's recursion limit, which a deeper schema reaches in the validator.",
    )
    schema_expanded_nodes: int = Field(
        default=2000,
        ge=10,
        description="Subschemas a validator may visit for one value with every `$ref` "
        "followed: what the cost of validation grows with. 40 levels of two `$ref`s each "
        "would be 2**40.",
    )
    pattern_chars: int = Field(
        default=1000, ge=1, description="Longest `pattern` or `patternProperties` key."
    )
    chat_max_tokens: int = Field(
        default=4096,
        ge=1,
        description="Largest `max_tokens` / `max_completion_tokens` a chat job may ask for.",
    )


@lru_cache
def get_task_limits() -> TaskLimits:
    return TaskLimits()
