"""The tasks intake accepts and the parameters each takes.

Intake validates `params` here, so a bad job is refused with a 4xx at submit time and never
reaches a worker. The worker runs the same names (apps/worker/tasks/).
"""

from __future__ import annotations

from typing import Annotated, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class TaskParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassifyParams(TaskParams):
    """Zero-shot classification: pick the label closest in meaning to the text.

    Bare label names are enough for clear-cut labels; descriptions and examples make each
    label's meaning plain to the embedder and lift accuracy further (docs/local-model.md).
    """

    labels: list[str] = Field(
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
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
        return schema


class ChatParams(TaskParams):
    """A raw OpenAI chat-completions body, passed through (`response_format` included).

    `model` is chosen by the task's model profiles, and answers are never streamed: a job's
    result is stored whole.
    """

    model_config = ConfigDict(extra="allow")

    messages: list[dict[str, Any]] = Field(
        default_factory=list, max_length=500, description="The conversation, OpenAI-style."
    )

    @model_validator(mode="after")
    def _not_streamed(self) -> ChatParams:
        extra = self.model_extra or {}
        if extra.get("stream"):
            raise ValueError("stream is not supported: a job's result is stored whole")
        if "model" in extra:
            raise ValueError("model is chosen by the task's model profiles; leave it out")
        if extra.get("n", 1) != 1:
            raise ValueError("n must be 1")
        return self


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


TASKS: dict[str, type[TaskParams]] = {
    "classify": ClassifyParams,
    "embed": EmbedParams,
    "describe_image": DescribeImageParams,
    "summarize": SummarizeParams,
    "extract": ExtractParams,
    "chat": ChatParams,
    "read_document": ReadDocumentParams,
}


class UnknownTask(Exception):
    def __init__(self, task: str) -> None:
        super().__init__(f"unknown task {task!r}; known tasks: {', '.join(sorted(TASKS))}")


def parse_params(task: str, params: dict[str, Any]) -> TaskParams:
    """The typed parameters of `task`; UnknownTask or pydantic's ValidationError if wrong."""
    try:
        model = TASKS[task]
    except KeyError:
        raise UnknownTask(task) from None
    return model.model_validate(params)


__all__ = [
    "TASKS",
    "ClassifyParams",
    "EmbedParams",
    "ReadDocumentParams",
    "TaskParams",
    "UnknownTask",
    "ValidationError",
    "parse_params",
]
