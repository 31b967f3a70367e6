"""The body of every error answer: `{"error": {"code": ..., "message": ...}}`.

Codes are stable strings clients may branch on; messages are for people and may change.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code.")
    message: str = Field(description="What went wrong, for a person.")


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: ErrorDetail
