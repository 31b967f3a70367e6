"""The wire contract as JSON Schema, for workers and clients in other languages.

Generated from the same pydantic models the services use; `make contracts` rewrites
contracts/, and tests/unit/test_schemas.py fails when the two drift apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from jobrelay.contract.api import JobList, JobView, SubmitRequest
from jobrelay.contract.errors import ErrorBody
from jobrelay.contract.messages import BatchJobEvent, JobEvent, JobMessage
from jobrelay.contract.record import JobRecord

CONTRACTS: dict[str, type[BaseModel]] = {
    "job-record": JobRecord,  # the record in the state store (`job:{id}`)
    "job-message": JobMessage,  # the message on the `jobs` topic
    "job-event": JobEvent,  # the message on the `job-events` topic
    "batch-job-event": BatchJobEvent,  # the message on the `batch-events` topic
    "submit-request": SubmitRequest,  # the body of POST /v1/jobs
    "job": JobView,  # a job as the APIs answer it
    "job-list": JobList,  # a page of GET /v1/jobs
    "error": ErrorBody,  # every error answer
}


def render(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="serialization")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in CONTRACTS.items():
        path = folder / f"{name}.schema.json"
        path.write_text(render(model))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "contracts")):
        sys.stdout.write(f"{path}\n")
