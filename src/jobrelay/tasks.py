"""The tasks intake accepts and the parameters each takes.

Intake validates `params` here, so a bad job is refused with a 4xx at submit time and never
reaches a worker. The worker runs the same names (apps/worker/tasks/).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class TaskParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassifyParams(TaskParams):
    """Zero-shot classification: pick the label closest in meaning to the text."""

    labels: list[str] = Field(
        min_length=2, max_length=100, description="Candidate labels, e.g. positive, negative."
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


class EmbedParams(TaskParams):
    """A vector for the text, from the configured embedding model."""


class DescribeImageParams(TaskParams):
    """A description of an uploaded image, from a vision model."""

    prompt: str = Field(
        default="Describe this image in two or three sentences.",
        min_length=1,
        max_length=2000,
        description="What to ask the vision model about the image.",
    )


TASKS: dict[str, type[TaskParams]] = {
    "classify": ClassifyParams,
    "embed": EmbedParams,
    "describe_image": DescribeImageParams,
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
    "TaskParams",
    "UnknownTask",
    "ValidationError",
    "parse_params",
]
