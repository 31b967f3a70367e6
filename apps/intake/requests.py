"""Turning a submit request (JSON or multipart) into a job record, refusing what the task
cannot take."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from apps.intake.idempotency import fingerprint
from apps.intake.settings import IntakeSettings
from apps.intake.uploads import read_form
from jobrelay import keys
from jobrelay.constants import MAX_JOB_LIFETIME_SECONDS
from jobrelay.contract import (
    JobInput,
    JobRecord,
    Priority,
    SubmitRequest,
    WebhookSpec,
    new_job_id,
)
from jobrelay.errors import ApiError
from jobrelay.files import FileStore
from jobrelay.task_catalog import Task, UnknownTask, get_task, parse_params
from jobrelay.task_params import OWN_CODES
from jobrelay.webhook_targets import RefusedTarget, check_url


class FormFields(BaseModel):
    """The non-file fields of a multipart submit; JSON-valued ones arrive as strings."""

    model_config = ConfigDict(extra="forbid")

    task: str
    params: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    deadline_seconds: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    webhook: WebhookSpec | None = None
    priority: Priority = Priority.NORMAL


def _task(name: str) -> Task:
    try:
        return get_task(name)
    except UnknownTask as exc:
        raise ApiError(400, "unknown_task", str(exc)) from exc


def check_type(task: str) -> Any:
    def check(content_type: str) -> None:
        allowed = _task(task).accepts
        if content_type not in allowed.file_types:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"task {task!r} takes {allowed.describe()}, not {content_type}",
            )

    return check


def check_metadata(metadata: dict[str, str], settings: IntakeSettings) -> None:
    """413 metadata_too_large past the caps; the message names the cap, never the data."""
    if len(metadata) > settings.max_metadata_keys:
        raise ApiError(
            413,
            "metadata_too_large",
            f"metadata has {len(metadata)} entries; at most {settings.max_metadata_keys} "
            "are accepted",
        )
    for key, value in metadata.items():
        if len(key) > settings.max_metadata_key_chars:
            raise ApiError(
                413,
                "metadata_too_large",
                f"a metadata key is {len(key)} characters long; at most "
                f"{settings.max_metadata_key_chars} are accepted",
            )
        if len(value) > settings.max_metadata_value_chars:
            raise ApiError(
                413,
                "metadata_too_large",
                f"the metadata value of a key is {len(value)} characters long; at most "
                f"{settings.max_metadata_value_chars} are accepted",
            )


async def _check_webhook(spec: WebhookSpec | None) -> None:
    """Refuse, at submit, a webhook that could only reach jobrelay's own network (SSRF)."""
    if spec is None:
        return
    try:
        await check_url(spec.url)
    except RefusedTarget as exc:
        raise ApiError(422, "webhook_url_refused", str(exc)) from exc


def _validated_params(task: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        return parse_params(task, params).model_dump()
    except UnknownTask as exc:
        raise ApiError(400, "unknown_task", str(exc)) from exc
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        detail = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in errors[:5]
        )
        # A limit of jobrelay's own answers with its own code, so a client can tell "too
        # costly to run here" from a typo.
        own = next((e["type"] for e in errors if e["type"] in OWN_CODES), "invalid_params")
        raise ApiError(422, own, f"params for {task!r}: {detail}") from exc
    except RecursionError as exc:
        # Never reached through the bounds in jobrelay.task_params; kept so that no params,
        # however nested, can answer 500.
        raise ApiError(422, "invalid_params", f"params for {task!r} are nested too deeply") from exc


async def from_json(
    request: Request, settings: IntakeSettings, tenant: str
) -> tuple[JobRecord, str]:
    body = await _bounded_body(request, settings.max_json_bytes)
    try:
        submit = SubmitRequest.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc
    return await checked_record(submit, settings, tenant)


async def checked_record(
    submit: SubmitRequest,
    settings: IntakeSettings,
    tenant: str,
    job_id: str | None = None,
) -> tuple[JobRecord, str]:
    """The job a JSON submit asks for, and its fingerprint; ApiError for what the task
    cannot take. Shared by `POST /v1/jobs` and each line of a batch (apps/intake/batches)."""
    if submit.input.file is not None:
        # A file reaches a job only as an upload, stored by intake under the job's own key:
        # a reference given in JSON could name any key in the store (another tenant's job
        # list, say) for the worker to read into the job, and for a refused submit to delete.
        raise ApiError(
            422,
            "invalid_input",
            "input.file cannot be given in JSON: upload the file as multipart/form-data "
            "in the field 'file'",
        )
    check_metadata(submit.metadata, settings)
    params = _validated_params(submit.task, submit.params)
    await _check_webhook(submit.webhook)
    takes = _task(submit.task).accepts
    if not takes.text:
        raise ApiError(
            422,
            "file_required",
            f"task {submit.task!r} takes {takes.describe()}; upload it "
            "as multipart/form-data in the field 'file'",
        )
    if takes.required and submit.input.empty:
        raise ApiError(422, "input_required", f"task {submit.task!r} needs input.text")
    if submit.input.text is not None and len(submit.input.text) > takes.max_text_chars:
        raise ApiError(
            413,
            "input_too_long",
            f"task {submit.task!r} takes at most {takes.max_text_chars} characters of text",
        )
    record = JobRecord.new(
        submit.task,
        submit.input,
        params,
        submit.metadata,
        submit.deadline_seconds,
        submit.webhook,
        job_id=job_id,
        tenant=tenant,
        priority=submit.priority,
    )
    return record, fingerprint(_asked(submit.model_dump(mode="json")) | {"params": params})


async def from_form(
    request: Request,
    settings: IntakeSettings,
    files: FileStore,
    retention: int,
    tenant: str,
    task: str | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[JobRecord, str]:
    """A job from a multipart upload; `task`/`params` fixed by the route, or from the form."""
    job_id = new_job_id()
    ttl = MAX_JOB_LIFETIME_SECONDS + retention
    form = await read_form(
        request,
        files,
        keys.file(job_id),
        settings.max_upload_bytes,
        ttl,
        check_type(task) if task else lambda _: None,
    )
    try:
        fields = _form_fields(form.fields, task, params)
        check_metadata(fields.metadata, settings)
        if form.file is None:
            raise ApiError(422, "file_required", "the form has no file in the field 'file'")
        check_type(fields.task)(form.file.content_type)
        checked = _validated_params(fields.task, fields.params)
        await _check_webhook(fields.webhook)
    except Exception:
        if form.file is not None:
            await files.delete(form.file)
        raise
    record = JobRecord.new(
        fields.task,
        JobInput(file=form.file),
        checked,
        fields.metadata,
        fields.deadline_seconds,
        fields.webhook,
        job_id=job_id,
        tenant=tenant,
        priority=fields.priority,
    )
    asked = _asked(fields.model_dump(mode="json")) | {
        "params": checked,
        "file": form.file.sha256,
        "content_type": form.file.content_type,
    }
    return record, fingerprint(asked)


def _asked(submitted: dict[str, Any]) -> dict[str, Any]:
    """What a submit asked for, as its Idempotency-Key fingerprint covers it: the default
    priority left out, so a key used before priorities existed still matches its replay."""
    if submitted.get("priority") == Priority.NORMAL:
        del submitted["priority"]
    return submitted


def _form_fields(
    raw: dict[str, str], task: str | None, params: dict[str, Any] | None
) -> FormFields:
    values: dict[str, Any] = {}
    for name, text in raw.items():
        if name in ("params", "metadata", "webhook"):
            try:
                values[name] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ApiError(422, "validation_error", f"{name}: not valid JSON ({exc})") from exc
        else:
            values[name] = text
    if task is not None:
        values = {"task": task, "params": params or {}}
    try:
        return FormFields.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc


async def _bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"the body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise ApiError(413, "body_too_large", f"the body is larger than {limit} bytes")
    return bytes(body)
