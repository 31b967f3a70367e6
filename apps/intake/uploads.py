"""Streaming `multipart/form-data`: the file goes to the state store chunk by chunk as it
arrives, so an upload holds about one chunk in memory and a too-large one is refused (413)
as soon as it passes the limit, not after it has been received whole."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from jobrelay.accepted_inputs import ContentCheck, media_type
from jobrelay.constants import FILE_CHUNK_BYTES
from jobrelay.contract import FileRef
from jobrelay.errors import ApiError
from jobrelay.files import FileStore

# Form fields other than the file are small JSON or text; anything larger is not a field.
_MAX_FIELD_BYTES = 64 * 1024
_MAX_FIELDS = 16
# Multipart framing (boundaries, part headers) on top of the file's own bytes.
_FRAMING_ALLOWANCE = 64 * 1024
# A file's name is shown back to its client and stored on the record: as long as most file
# systems allow, and no longer.
MAX_FILENAME_CHARS = 255

CheckType = Callable[[str], None]


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    file: FileRef | None = None


def too_large(limit: int) -> ApiError:
    return ApiError(413, "file_too_large", f"the upload is larger than {limit} bytes")


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    content_type: str = "application/octet-stream"


class _Reader:
    """Collects parser callbacks (synchronous) as events that `feed` then stores (async)."""

    def __init__(self, boundary: bytes) -> None:
        self.events: list[tuple[str, bytes]] = []
        field_name, value = bytearray(), bytearray()

        def on_header_field(data: bytes, start: int, end: int) -> None:
            field_name.extend(data[start:end])

        def on_header_value(data: bytes, start: int, end: int) -> None:
            value.extend(data[start:end])

        def on_header_end() -> None:
            self.events.append(("header", bytes(field_name) + b"\0" + bytes(value)))
            field_name.clear()
            value.clear()

        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": lambda: self.events.append(("begin", b"")),
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_headers_finished": lambda: self.events.append(("headers", b"")),
                "on_part_data": lambda d, s, e: self.events.append(("data", bytes(d[s:e]))),
                "on_part_end": lambda: self.events.append(("end", b"")),
            },
        )


class _Upload:
    """The one file part: hashed, chunked and stored as it streams in."""

    def __init__(self, files: FileStore, key: str, limit: int, ttl: int, part: _Part) -> None:
        self.files, self.key, self.limit, self.ttl, self.part = files, key, limit, ttl, part
        self.buffer = bytearray()
        self.digest = hashlib.sha256()
        self.size = 0
        self.chunks = 0
        self.content = ContentCheck(part.content_type)

    async def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise too_large(self.limit)
        self._check(data)
        self.digest.update(data)
        self.buffer.extend(data)
        while len(self.buffer) >= FILE_CHUNK_BYTES:
            await self._flush(FILE_CHUNK_BYTES)

    def _check(self, data: bytes, final: bool = False) -> None:
        wrong = self.content.feed(data, final)
        if wrong is not None:
            raise ApiError(415, "content_type_mismatch", wrong)

    async def finish(self) -> FileRef:
        self._check(b"", final=True)
        if self.buffer or self.chunks == 0:
            await self._flush(len(self.buffer))
        return FileRef(
            key=self.key,
            filename=self.part.filename,
            content_type=self.part.content_type,
            size=self.size,
            chunks=self.chunks,
            sha256=self.digest.hexdigest(),
        )

    async def _flush(self, n: int) -> None:
        await self.files.put_chunk(self.key, self.chunks, bytes(self.buffer[:n]), self.ttl)
        del self.buffer[:n]
        self.chunks += 1


def _disposition(part: _Part) -> None:
    _, params = parse_options_header(part.headers.get("content-disposition", ""))
    part.name = params.get(b"name", b"").decode("utf-8", "replace")
    filename = params.get(b"filename")
    part.filename = filename.decode("utf-8", "replace") if filename is not None else None
    if "content-type" in part.headers:
        part.content_type = media_type(part.headers["content-type"])


async def read_form(
    request: Request, files: FileStore, key: str, limit: int, ttl: int, check_type: CheckType
) -> Form:
    """Fields as strings, and the file (field `file`) stored under `key`.

    `check_type` raises for a media type the task cannot take; it runs when the file's
    headers arrive, before any of its bytes are stored. On any error the chunks already
    stored are deleted.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise ApiError(400, "invalid_multipart", "expected multipart/form-data with a boundary")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + _FRAMING_ALLOWANCE:
        raise too_large(limit)
    form = Form()
    try:
        await _stream(request, _Reader(boundary), form, files, key, limit, ttl, check_type)
    except Exception:
        # Whatever was stored of the file goes; deleting absent chunks costs little.
        await files.delete_chunks(key, limit // FILE_CHUNK_BYTES + 1)
        raise
    return form


class _FormBuilder:
    """Applies the parser's events to the form: fields collected, the file streamed."""

    def __init__(
        self, form: Form, files: FileStore, key: str, limit: int, ttl: int, check: CheckType
    ) -> None:
        self.form, self.files, self.key, self.limit, self.ttl, self.check = (
            form,
            files,
            key,
            limit,
            ttl,
            check,
        )
        self.part, self.value = _Part(), bytearray()
        self.upload: _Upload | None = None

    async def apply(self, kind: str, data: bytes) -> None:
        if kind == "begin":
            self.part, self.value = _Part(), bytearray()
        elif kind == "header":
            name, _, value = data.partition(b"\0")
            self.part.headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        elif kind == "headers":
            _disposition(self.part)
            if self.part.filename is not None:
                self.upload = _start_upload(
                    self.part, self.upload, self.files, self.key, self.limit, self.ttl, self.check
                )
        elif kind == "data":
            await self._data(data)
        elif kind == "end":
            await self._end()

    def _in_file(self) -> bool:
        return self.upload is not None and self.upload.part is self.part

    async def _data(self, data: bytes) -> None:
        if self.upload is not None and self._in_file():
            await self.upload.add(data)
            return
        self.value.extend(data)
        if len(self.value) > _MAX_FIELD_BYTES:
            raise ApiError(413, "field_too_large", f"form field {self.part.name!r} is too large")

    async def _end(self) -> None:
        if self.upload is not None and self._in_file():
            self.form.file = await self.upload.finish()
            return
        if len(self.form.fields) >= _MAX_FIELDS:
            raise ApiError(400, "invalid_multipart", "too many form fields")
        self.form.fields[self.part.name] = self.value.decode("utf-8", "replace")


async def _stream(
    request: Request,
    reader: _Reader,
    form: Form,
    files: FileStore,
    key: str,
    limit: int,
    ttl: int,
    check_type: CheckType,
) -> None:
    builder = _FormBuilder(form, files, key, limit, ttl, check_type)
    async for chunk in request.stream():
        try:
            reader.parser.write(chunk)
        except MultipartParseError as exc:
            raise ApiError(400, "invalid_multipart", f"the form is malformed: {exc}") from exc
        events, reader.events = reader.events, []
        for kind, data in events:
            await builder.apply(kind, data)
    reader.parser.finalize()


def _start_upload(
    part: _Part,
    current: _Upload | None,
    files: FileStore,
    key: str,
    limit: int,
    ttl: int,
    check_type: CheckType,
) -> _Upload:
    if part.name != "file":
        raise ApiError(400, "invalid_multipart", f"files go in the field 'file', not {part.name!r}")
    if current is not None:
        raise ApiError(400, "invalid_multipart", "one file per job")
    if part.filename is not None and len(part.filename) > MAX_FILENAME_CHARS:
        raise ApiError(
            422,
            "filename_too_long",
            f"the file's name is {len(part.filename)} characters long; at most "
            f"{MAX_FILENAME_CHARS} are accepted",
        )
    check_type(part.content_type)
    return _Upload(files, key, limit, ttl, part)
