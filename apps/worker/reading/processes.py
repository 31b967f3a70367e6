"""The OCR and PDF engines as child processes, each capped in time and memory.

Debian's tesseract and poppler are mature, but a crafted file can still make a decoder spin
or allocate without end. A child process can be killed at its deadline and given an address
space limit, and its crash is its own: the worker's event loop never blocks on it and keeps
serving other jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from apps.worker.reading.errors import DocumentProblem, DocumentRefused

# Address space per engine process. tesseract on a 25-megapixel page and pdftoppm on a large
# page stay well below it; a decoder asked to allocate more fails instead of the machine.
MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024

# tesseract's OpenMP threads fight each other and every other process on a busy small machine
# (issue 16 saw one page take many times longer so); jobs read documents side by side anyway,
# so each engine gets one thread.
_ENV = {"OMP_THREAD_LIMIT": "1", "LC_ALL": "C", "PATH": "/usr/bin:/bin"}


@dataclass(frozen=True, slots=True)
class Finished:
    returncode: int
    stdout: bytes
    stderr: bytes


# util-linux's prlimit sets the limits in the child before it executes the engine. Python's
# preexec_fn would do the same, but it is unsafe in a process that runs threads (the gRPC
# client of the Dapr SDK does).
_PRLIMIT = ["/usr/bin/prlimit", f"--as={MEMORY_LIMIT_BYTES}", "--core=0", "--"]


async def run(args: list[str], seconds: float, stdin: bytes | None = None) -> Finished:
    """`args` run to completion, or DocumentRefused(TIMEOUT) once `seconds` have passed."""
    child = await asyncio.create_subprocess_exec(
        *_PRLIMIT,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_ENV,
    )
    try:
        async with asyncio.timeout(seconds):
            stdout, stderr = await child.communicate(stdin)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        raise DocumentRefused(
            DocumentProblem.TIMEOUT, f"{args[0]} did not finish within {seconds:g} s"
        ) from None
    return Finished(child.returncode or 0, stdout, stderr)
