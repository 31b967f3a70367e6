"""TEST DOUBLE: an OpenAI-compatible embeddings server that answers at once, or after a set
delay behind a set concurrency limit. Not a model: every answer is the same unit vector, as
floats or, when asked (`encoding_format`), as base64 like real endpoints.

The benchmarks need a model whose cost is known exactly, so that what is left of a job's
time is the pipeline's own: "instant" (no delay, unlimited) for overhead and throughput, and
"200 ms behind a limit of L" for model-bound efficiency, where the theoretical ceiling is
L / 0.2 s. It runs in its own process (`python -m bench.doubles.instant_model --port N`) so
its event loop never shares a GIL with the load generator.

Besides `POST /v1/embeddings` it serves, for the benchmark driver only:
- `POST /control` `{"delay_ms": 200, "concurrency": 8, "paused": false}` (0 = unlimited) to
  change the model; paused, calls wait until it is not (a stalled model, to build a backlog);
- `GET /stats[?spans=0]`: calls answered and the monotonic start/end time of each, so throughput and
  efficiency are read off the model's side, whatever design sits in front of it;
- `POST /stats/reset`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import struct
import time
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("bench.doubles.instant_model")

# The dimensions of the local model (all-MiniLM-L6-v2), so the stored results weigh what
# real ones do.
DIMENSIONS = 384
MODEL_ID = "instant-double"


def _answer(encoding: str) -> bytes:
    # One precomputed body per encoding: building 384 floats of JSON per call would make
    # "instant" cost a millisecond of this process's CPU.
    value = (1.0 / DIMENSIONS) ** 0.5
    vector: object = [value] * DIMENSIONS
    if encoding == "base64":
        # As OpenAI, vLLM and the built-in model answer `encoding_format: base64`, which the
        # openai SDK asks for by default: little-endian float32s, base64.
        vector = base64.b64encode(struct.pack(f"<{DIMENSIONS}f", *[value] * DIMENSIONS)).decode()
    body = {
        "object": "list",
        "model": MODEL_ID,
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    return json.dumps(body).encode()


@dataclass
class Double:
    delay: float = 0.0
    limit: int = 0  # 0: unlimited
    gate: asyncio.Semaphore | None = None
    spans: list[tuple[float, float]] = field(default_factory=list)  # (start, end), monotonic
    running: asyncio.Event = field(default_factory=asyncio.Event)  # clear: calls wait (paused)
    answers: dict[str, bytes] = field(
        default_factory=lambda: {kind: _answer(kind) for kind in ("float", "base64")}
    )

    async def embeddings(self, request: Request) -> Response:
        asked = json.loads(await request.body()).get("encoding_format")
        answer = self.answers["base64" if asked == "base64" else "float"]
        await self.running.wait()
        if self.gate is None:
            return await self._serve(answer)
        async with self.gate:
            return await self._serve(answer)

    async def _serve(self, answer: bytes) -> Response:
        start = time.monotonic()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.spans.append((start, time.monotonic()))
        return Response(answer, media_type="application/json")

    async def control(self, request: Request) -> Response:
        body = await request.json()
        self.delay = float(body.get("delay_ms", 0)) / 1000
        self.limit = int(body.get("concurrency", 0))
        # Calls already waiting on the old gate finish under it; new calls take the new one.
        self.gate = asyncio.Semaphore(self.limit) if self.limit else None
        if body.get("paused"):
            self.running.clear()
        else:
            self.running.set()
        log.info("instant model double: delay %.3f s, limit %s", self.delay, self.limit or "-")
        return JSONResponse({"delay_ms": self.delay * 1000, "concurrency": self.limit})

    async def stats(self, request: Request) -> Response:
        # `?spans=0` while polling for a count: a backlog's spans are megabytes of JSON.
        spans = self.spans if request.query_params.get("spans", "1") != "0" else []
        return JSONResponse({"calls": len(self.spans), "spans": spans})

    async def reset(self, _: Request) -> Response:
        self.spans = []
        return JSONResponse({"calls": 0})

    async def health(self, _: Request) -> Response:
        return JSONResponse({"status": "ok"})


def build(double: Double) -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/embeddings", double.embeddings, methods=["POST"]),
            Route("/control", double.control, methods=["POST"]),
            Route("/stats", double.stats, methods=["GET"]),
            Route("/stats/reset", double.reset, methods=["POST"]),
            Route("/healthz", double.health, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    double = Double()
    double.running.set()
    uvicorn.run(build(double), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
