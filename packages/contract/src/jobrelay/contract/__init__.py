"""jobrelay's wire contract: the job record in the state store, the messages on the broker,
the public API's shapes and the error body, exported as JSON Schema (`make contracts`) for
workers and clients in other languages.

Depends on pydantic alone, so the client SDK and any service can share it. Every type is
importable from here; the modules say which side of the wire each one is on.
"""

from jobrelay.contract.api import (
    JobInputView,
    JobList,
    JobView,
    QueueView,
    SubmitRequest,
    job_url,
)
from jobrelay.contract.errors import ErrorBody, ErrorDetail
from jobrelay.contract.messages import BatchJobEvent, JobEvent, JobMessage
from jobrelay.contract.parts import (
    ContractModel,
    FileRef,
    JobError,
    JobInput,
    JobResult,
    ModelCall,
    Usage,
    WebhookDelivery,
    WebhookEvent,
    WebhookSpec,
)
from jobrelay.contract.record import MAX_WATCHERS, BatchLine, JobRecord
from jobrelay.contract.status import (
    TRANSITIONS,
    IllegalTransition,
    JobStatus,
    Priority,
    new_job_id,
    utcnow,
)

__all__ = [
    "MAX_WATCHERS",
    "TRANSITIONS",
    "BatchJobEvent",
    "BatchLine",
    "ContractModel",
    "ErrorBody",
    "ErrorDetail",
    "FileRef",
    "IllegalTransition",
    "JobError",
    "JobEvent",
    "JobInput",
    "JobInputView",
    "JobList",
    "JobMessage",
    "JobRecord",
    "JobResult",
    "JobStatus",
    "JobView",
    "ModelCall",
    "Priority",
    "QueueView",
    "SubmitRequest",
    "Usage",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSpec",
    "job_url",
    "new_job_id",
    "utcnow",
]
