"""The parameters each task takes, as pydantic models (jobrelay.task_catalog names which).

Intake validates `params` here, so a bad job is refused with a 4xx at submit time and never
reaches a worker.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from jobrelay import extract_schema
from jobrelay.task_limits import get_task_limits

# Error types (pydantic's `type`) that intake answers with as their own stable codes
# (apps/intake/requests.py) rather than the general `invalid_params`.
OWN_CODES = frozenset(
    {"schema_too_complex", "schema_not_supported", "chat_param_not_allowed", "chat_param_too_large"}
)
# Longest classify label: a label is a name, embedded in a sentence with each job.
MAX_LABEL_CHARS = 200


class TaskParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassifyParams(TaskParams):
    """Zero-shot classification: pick the label closest in meaning to the text.

    Bare label names are enough for clear-cut labels; descriptions and examples make each
    label's meaning plain to the embedder and lift accuracy further (docs/local-model.md).
    """

    labels: list[Annotated[str, Field(max_length=MAX_LABEL_CHARS)]] = Field(
        min_length=2, max_length=100, description="Candidate labels, e.g. positive, negative."
    )
    descriptions: dict[str, Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=dict,
        description="Optional: a label's meaning in a sentence, keyed by label.",
    )
    examples: dict[
        str,
        Annotated[list[Annotated[str, Field(min_length=1, max_length=1000)]], Field(max_length=20)],
    ] = Field(
        default_factory=dict,
        description="Optional: up to 20 short texts that have the label, keyed by label.",
    )
    template: str | None = Field(
        default=None,
        min_length=7,
        max_length=200,
        description='Optional: a sentence with "{label}" in it, e.g. "This review is {label}.",'
        " to use instead of the default wording.",
    )
    multi_label: bool = Field(
        default=False, description="Return every label that applies (at least one), not one."
    )
    threshold: float | None = Field(
        default=None,
        ge=-3,
        le=5,
        description="multi_label only: how many standard deviations above the mean of the "
        "text's label scores a label must stand to be chosen; lower chooses more labels. "
        "Default 0.75, calibrated on jobrelay's labelled sets.",
    )

    @field_validator("labels")
    @classmethod
    def _distinct_and_named(cls, labels: list[str]) -> list[str]:
        cleaned = [label.strip() for label in labels]
        if any(not label for label in cleaned):
            raise ValueError("labels must not be empty strings")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("labels must be distinct")
        return cleaned

    @field_validator("template")
    @classmethod
    def _names_the_label(cls, template: str | None) -> str | None:
        if template is not None and "{label}" not in template:
            raise ValueError('template must contain "{label}"')
        return template

    @model_validator(mode="after")
    def _consistent(self) -> ClassifyParams:
        # A misspelt key would otherwise be ignored silently and the label left undescribed.
        for field in ("descriptions", "examples"):
            unknown = sorted(set(getattr(self, field)) - set(self.labels))
            if unknown:
                raise ValueError(f"{field} names labels that are not in labels: {unknown}")
        if self.threshold is not None and not self.multi_label:
            raise ValueError("threshold applies only with multi_label: true")
        return self


class EmbedParams(TaskParams):
    """A vector for the text, from the configured embedding model."""


class SummarizeParams(TaskParams):
    """A short summary of the text, from a chat model."""

    max_words: int = Field(default=60, ge=5, le=1000, description="Longest summary wanted.")
    focus: str | None = Field(
        default=None, min_length=1, max_length=500, description="What to emphasise, if anything."
    )


class ExtractParams(TaskParams):
    """Fields taken from the text as JSON that must validate against `schema`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: dict[str, Any] = Field(
        alias="schema", description="JSON Schema (2020-12) the output must validate against."
    )
    instructions: str | None = Field(
        default=None, min_length=1, max_length=2000, description="Extra guidance for the model."
    )

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        # Bounds first: check_schema itself recurses, and a schema past them could crash it.
        try:
            extract_schema.check(schema, get_task_limits())
        except extract_schema.SchemaRefused as exc:
            raise PydanticCustomError(exc.code, exc.message) from None
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
        return schema


# The OpenAI SDK's own arguments, which it merges into the request rather than sending as
# fields: each would let a job change what the operator's key is spent on (`extra_body` can
# replace the model and `n`), where the request goes (`extra_query`, `extra_headers`) or how
# long a worker waits (`timeout`).
_SDK_ARGUMENTS = ("extra_body", "extra_headers", "extra_query", "timeout")
# Chosen by jobrelay, never by the job.
_CHOSEN_HERE = {
    "model": "model is chosen by the task's model profiles; leave it out",
    "stream": "stream is not supported: a job's result is stored whole",
    "stream_options": "stream_options is not supported: a job's result is stored whole",
}


class ChatParams(TaskParams):
    """An OpenAI chat-completions body (`response_format` included), with the fields that
    shape one answer; what would spend more of the operator's budget or change where the
    request goes is refused.

    `model` is chosen by the task's model profiles, `stream` is the worker's to set (the
    text streams to the job's event stream as `delta` events, and its result is stored
    whole), and one job is one answer (`n` = 1). Fields outside this list
    (`service_tier`, `store`, `audio`, `web_search_options`, ...) are refused too: each one
    admitted is a cost or a data flow the operator has to agree to first.
    """

    messages: list[dict[str, Any]] = Field(
        default_factory=list, max_length=500, description="The conversation, OpenAI-style."
    )
    response_format: dict[str, Any] | None = Field(
        default=None, description="`text`, `json_object` or `json_schema`, as OpenAI takes it."
    )
    max_tokens: int | None = Field(
        default=None, ge=1, description="Most tokens to generate (capped by the operator)."
    )
    max_completion_tokens: int | None = Field(
        default=None, ge=1, description="The same, for models that take this name instead."
    )
    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling.")
    top_p: float | None = Field(default=None, ge=0, le=1, description="Nucleus sampling.")
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2, description="-2 to 2.")
    presence_penalty: float | None = Field(default=None, ge=-2, le=2, description="-2 to 2.")
    stop: str | list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=4, description="Up to 4 sequences that end the answer."
    )
    seed: int | None = Field(default=None, description="Best-effort determinism.")
    logit_bias: dict[str, Annotated[int, Field(ge=-100, le=100)]] | None = Field(
        default=None, max_length=300, description="Token id -> bias, -100 to 100."
    )
    logprobs: bool | None = Field(default=None, description="Return token log probabilities.")
    top_logprobs: int | None = Field(default=None, ge=0, le=20, description="0 to 20.")
    tools: list[dict[str, Any]] | None = Field(
        default=None, max_length=128, description="Functions the model may call."
    )
    tool_choice: str | dict[str, Any] | None = Field(
        default=None, description="`none`, `auto`, `required`, or a named function."
    )
    parallel_tool_calls: bool | None = Field(default=None, description="Several calls at once.")
    user: str | None = Field(default=None, max_length=256, description="Your end user's id.")
    n: Literal[1] | None = Field(default=None, description="Answers per job: 1.")

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, body: Any) -> Any:
        if not isinstance(body, dict):
            return body
        for name, reason in _CHOSEN_HERE.items():
            if name in body and (name != "stream" or body[name]):
                raise PydanticCustomError("chat_param_not_allowed", reason)
        sdk = [name for name in _SDK_ARGUMENTS if name in body]
        if sdk:
            raise PydanticCustomError(
                "chat_param_not_allowed",
                "{names}: the OpenAI SDK's own arguments, not request fields; refused, since "
                "they can change the model, the request or its cost",
                {"names": ", ".join(sdk)},
            )
        unknown = sorted(set(body) - set(cls.model_fields) - {"stream"})
        if unknown:
            raise PydanticCustomError(
                "chat_param_not_allowed",
                "{names}: not among the chat fields jobrelay passes on ({known})",
                {"names": ", ".join(unknown)[:300], "known": ", ".join(cls.model_fields)},
            )
        return {name: value for name, value in body.items() if name != "stream"}

    @field_validator("max_tokens", "max_completion_tokens")
    @classmethod
    def _within_cap(cls, value: int | None, info: ValidationInfo) -> int | None:
        cap = get_task_limits().chat_max_tokens
        if value is not None and value > cap:
            raise PydanticCustomError(
                "chat_param_too_large",
                "{field} may be at most {cap} (JOBRELAY_LIMIT_CHAT_MAX_TOKENS)",
                {"field": info.field_name, "cap": cap},
            )
        return value


class DescribeImageParams(TaskParams):
    """A description of an uploaded image, from a vision model."""

    prompt: str = Field(
        default="Describe this image in two or three sentences.",
        min_length=1,
        max_length=2000,
        description="What to ask the vision model about the image.",
    )


class ReadDocumentParams(TaskParams):
    """An uploaded image or PDF turned into markdown text, offline (OCR where needed)."""

    summary: bool = Field(
        default=False,
        description="Add a short summary of the text read, from the task's chat model.",
    )
    summary_words: int = Field(default=40, ge=5, le=300, description="Longest summary wanted.")
    describe: bool = Field(
        default=True,
        description="For an image, add a vision model's description when the task's model "
        "profiles have one (none on the built-in local model).",
    )
