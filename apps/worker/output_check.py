"""Checking a model's answer against the job's JSON Schema, in a child process with a CPU-time
limit, never on the worker's event loop.

The schema is the client's and validation is a program it writes: intake bounds it
(jobrelay.extract_schema), but a validator may still find costly corners no static bound
sees. Run inline, such a check stopped the event loop, and with it the lease renewals and
`/healthz`; the lease then lapsed and the redelivered message froze the next worker. Here the
check runs in a fresh `python -m apps.worker.output_check` with RLIMIT_CPU and RLIMIT_AS set
before it reads the schema, so the kernel ends it when it overruns, and the loop only awaits
a pipe. Patterns run on RE2 (jobrelay.linear_regex), so they cannot backtrack.

A fresh process per check (not a pool): RLIMIT_CPU counts a process's whole life, and a
worker killed mid-task breaks a ProcessPoolExecutor for every job sharing it.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

from jobrelay.linear_regex import search

# Problems reported back to the model for a repair; more would only lengthen the prompt.
MAX_PROBLEMS = 5
# The child exits with this when it runs out of memory (RLIMIT_AS) in a way Python reports.
_OUT_OF_MEMORY = 3


class CheckExhausted(Exception):
    """The check ran out of its CPU time or memory: the schema is too costly to check."""


@dataclass(frozen=True, slots=True)
class Checked:
    data: Any  # the answer parsed as JSON (None if it is not JSON)
    problems: list[str]  # empty when it validates


async def check(schema: dict[str, Any], text: str, cpu_seconds: int, memory_bytes: int) -> Checked:
    """`text` parsed and validated against `schema` in a child process; CheckExhausted if
    the child is stopped by its limits (or takes four times its CPU budget in wall time)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        __name__,
        str(cpu_seconds),
        str(memory_bytes),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    request = json.dumps({"schema": schema, "text": text}).encode()
    try:
        # Wall time bounds a child that waits rather than computes (swapping, say); the
        # start-up of the interpreter is in it too.
        out, _ = await asyncio.wait_for(child.communicate(request), cpu_seconds * 4 + 10)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise CheckExhausted(
            f"checking the answer against the schema took more than {cpu_seconds * 4 + 10} s"
        ) from None
    except BaseException:
        # Cancelled (the job's deadline, a shutdown): never leave the child running.
        if child.returncode is None:
            child.kill()
            await child.wait()
        raise
    if child.returncode != 0:
        raise CheckExhausted(
            "checking the answer against the schema used more than its "
            f"{cpu_seconds} s of CPU time or {memory_bytes // 2**20} MiB of memory "
            f"(exit status {child.returncode}); simplify the schema"
        )
    answer = json.loads(out)
    return Checked(answer["data"], answer["problems"])


# ---- the child ------------------------------------------------------------------------------

# jsonschema's keyword functions receive its concrete validator, whose `descend` the public
# Validator protocol does not declare.
Validator = Any


def _pattern(validator: Validator, pattern: str, instance: Any, _: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Validator, patterns: dict[str, Any], instance: Any, _: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if search(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _unmatched(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    named = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [
        name
        for name in instance
        if name not in named and not any(search(pattern, name) for pattern in patterns)
    ]


def _additional_properties(
    validator: Validator, additional: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    extras = _unmatched(instance, schema)
    if validator.is_type(additional, "object"):
        for name in extras:
            yield from validator.descend(instance[name], additional, path=name)
    elif additional is False and extras:
        yield ValidationError(f"properties not allowed here: {', '.join(map(repr, extras))}")


# Draft 2020-12 with every regular expression on RE2. (`unevaluatedProperties` beside
# `patternProperties` still matches with Python's engine inside jsonschema; the CPU limit
# is what bounds that corner.)
Re2Validator = validators.extend(  # type: ignore[no-untyped-call]  # jsonschema leaves it untyped
    Draft202012Validator,
    validators={
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)


def problems(schema: dict[str, Any], text: str) -> Checked:
    """The check itself: parse `text` as JSON, validate it against `schema`."""
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and integers past Python's digit limit
        return Checked(None, [f"not valid JSON: {exc}"])
    errors = sorted(Re2Validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    found = [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in errors[:MAX_PROBLEMS]
    ]
    return Checked(data, found)


def _child(cpu_seconds: int, memory_bytes: int) -> int:
    # Limits before reading the request: nothing the client wrote runs without them. The
    # hard limit a second above the soft one: SIGXCPU first, SIGKILL if it is ignored.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    request = json.loads(sys.stdin.buffer.read())
    try:
        result = problems(request["schema"], request["text"])
        sys.stdout.write(json.dumps({"data": result.data, "problems": result.problems}))
    except (MemoryError, RecursionError):
        return _OUT_OF_MEMORY
    return 0


if __name__ == "__main__":
    sys.exit(_child(int(sys.argv[1]), int(sys.argv[2])))
