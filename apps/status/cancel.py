"""Cancelling a job: the shared move to `cancelled` lives in jobrelay.cancelling (intake
cancels a batch's queued jobs with it too)."""

from __future__ import annotations

from jobrelay.cancelling import JobFinished, JobNotFound, cancel

__all__ = ["JobFinished", "JobNotFound", "cancel"]
