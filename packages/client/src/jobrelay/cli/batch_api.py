"""The server's OpenAI-style Files and Batch routes (`/v1/files`, `/v1/batches` on intake),
as `jobrelay batch` uses them: upload a file, create a batch, read it, download a file.

Plain httpx rather than the `openai` package, so the client distribution stays small.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from jobrelay.client import ClientSettings, ConnectionFailed
from jobrelay.client.responses import api_error
from jobrelay.client.urls import Endpoints

_TIMEOUT = httpx.Timeout(60.0)
ENDED = ("completed", "failed", "expired", "cancelled")


class BatchApi:
    def __init__(self, settings: ClientSettings) -> None:
        base = f"{settings.intake_url.rstrip('/')}/v1"
        headers = Endpoints(settings).headers
        self._http = httpx.Client(base_url=base, headers=headers, timeout=_TIMEOUT)

    def __enter__(self) -> BatchApi:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{method} {url}: {exc!r}") from exc
        if response.status_code >= 300:
            raise api_error(response)
        answer: dict[str, Any] = response.json()
        return answer

    def upload(self, path: Path) -> str:
        """The file's id once uploaded (streamed from disk, `purpose=batch`)."""
        with path.open("rb") as data:
            files: dict[str, tuple[str, IO[bytes], str]] = {
                "file": (path.name, data, "application/jsonl")
            }
            answer = self._json("POST", "/files", data={"purpose": "batch"}, files=files)
        return str(answer["id"])

    def create(self, file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        body = {
            "input_file_id": file_id,
            "endpoint": "/v1/jobs",
            "completion_window": "24h",
            "metadata": metadata,
        }
        return self._json("POST", "/batches", json=body)

    def get(self, batch_id: str) -> dict[str, Any]:
        return self._json("GET", f"/batches/{batch_id}")

    def lines(self, file_id: str | None) -> Iterator[dict[str, Any]]:
        """A file's lines, parsed, as they download."""
        if file_id is None:
            return
        try:
            with self._http.stream("GET", f"/files/{file_id}/content") as response:
                if response.status_code >= 300:
                    response.read()
                    raise api_error(response)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"GET /files/{file_id}/content: {exc!r}") from exc
