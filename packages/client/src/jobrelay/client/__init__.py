"""jobrelay's Python client: submit jobs, follow them, collect their results.

    from jobrelay.client import Client, Submission

    with Client() as jobs:
        job = jobs.run(Submission("classify", text="Great!", params={"labels": ["good", "bad"]}))
        print(job.result.output["label"] if job.result else None)

`client.list(JobFilter(status=["succeeded"]))` iterates your jobs, newest first, through
every page. `AsyncClient` has the same methods for asyncio code. Addresses and the API key come from
`JOBRELAY_INTAKE_URL`, `JOBRELAY_STATUS_URL` and `JOBRELAY_API_KEY` (ClientSettings).
"""

from jobrelay.client.aio import AsyncClient
from jobrelay.client.errors import (
    ApiError,
    ConnectionFailed,
    JobFailed,
    JobrelayError,
    StreamUnavailable,
    WaitTimeout,
)
from jobrelay.client.listing import JobFilter
from jobrelay.client.responses import Delta
from jobrelay.client.settings import ClientSettings
from jobrelay.client.submission import Outcome, Submission, Upload
from jobrelay.client.sync import Client
from jobrelay.client.webhooks import InvalidSignature, verify_webhook
from jobrelay.contract import JobResult, JobStatus, JobView

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientSettings",
    "ConnectionFailed",
    "Delta",
    "InvalidSignature",
    "JobFailed",
    "JobFilter",
    "JobResult",
    "JobStatus",
    "JobView",
    "JobrelayError",
    "Outcome",
    "StreamUnavailable",
    "Submission",
    "Upload",
    "WaitTimeout",
    "verify_webhook",
]
