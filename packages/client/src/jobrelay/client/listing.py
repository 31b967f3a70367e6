"""What `Client.list` and `AsyncClient.list` send: GET /v1/jobs's filters as query
parameters, and each page's answer read; both clients follow `next` until it is null."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from jobrelay.client.responses import api_error
from jobrelay.contract import JobList, JobStatus


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which of your jobs to list; every field left empty keeps everything.

    `created_after` is inclusive, `created_before` exclusive; `metadata` keeps jobs labelled
    with every given key=value. `page_size` is the server's `limit` (1 to 100): results
    per request, not in all.
    """

    status: Sequence[JobStatus | str] = ()
    task: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    page_size: int = 50

    def params(self) -> list[tuple[str, str]]:
        out = [("limit", str(self.page_size))]
        out += [("status", JobStatus(s).value) for s in self.status]
        if self.task is not None:
            out.append(("task", self.task))
        if self.created_after is not None:
            out.append(("created_after", self.created_after.isoformat()))
        if self.created_before is not None:
            out.append(("created_before", self.created_before.isoformat()))
        out += [("metadata", f"{key}={value}") for key, value in self.metadata.items()]
        return out


def page_or_raise(response: httpx.Response) -> JobList:
    """A 200 answer's page; ApiError (`invalid_cursor`, `invalid_limit`, ...) otherwise."""
    if response.status_code == 200:
        return JobList.model_validate_json(response.content)
    raise api_error(response)
