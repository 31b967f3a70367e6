"""The real local model server (apps/model) on a free loopback port, run in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from apps.model.main import create_app
from apps.model.settings import ModelSettings
from tests.ports import free_port


@contextmanager
def serving(settings: ModelSettings) -> Iterator[str]:
    """The server's OpenAI base URL (…/v1) while the block runs."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the local model server stopped while starting"
        assert time.monotonic() < deadline, "the local model server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
