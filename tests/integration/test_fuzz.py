"""Schemathesis against both OpenAPI specs on the running stack: generated requests (valid
and not) to every operation of intake and status. None may answer a 5xx, and every answer
must be one the spec declares, with the declared content type and body schema.

Bounded (EXAMPLES per operation) so the suite stays fast; the count of generated cases is
printed, and written to build/schemathesis-cases.txt for the CI summary.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.stack import ROOT, Stack, client_headers

EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The fuzzer acts as a tenant of its own, so its jobs and replays never touch other tests'.
# `Prefer: wait=0`: a generated `wait=60` would hold each case for a minute.
_HEADERS = client_headers("fuzz") | {"Prefer": "wait=0"}
# Routes for the sidecar (subscriptions), should the spec list any; they answer only
# the sidecar (APP_API_TOKEN; test_security.py), not clients.
_SIDECAR_ROUTES = ("/dapr/", "/events/")


def _fuzz(stack: Stack, app: str) -> int:
    """How many cases ran; raises on the first failed check."""
    base_url = stack.url(app)
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    cases = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(
                f"{app}'s spec has an operation schemathesis cannot read: {result.err()}"
            )
        operation = result.ok()
        if operation.path.startswith(_SIDECAR_ROUTES):
            continue

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same cases every run: a failure reproduces
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Case[Any]) -> None:
            nonlocal cases
            cases += 1
            case.call_and_validate(base_url=base_url, headers=_HEADERS, checks=CHECKS, timeout=30)

        run()
    return cases


@pytest.mark.parametrize("app", ["intake", "status"])
def test_generated_requests_never_get_a_5xx_or_an_undeclared_answer(stack: Stack, app: str) -> None:
    cases = _fuzz(stack, app)
    assert cases > 0
    line = f"schemathesis: {cases} generated cases against {app} ({stack.profile}), all passed\n"
    sys.stderr.write(line)
    out = ROOT / "build" / "schemathesis-cases.txt"
    Path(out.parent).mkdir(exist_ok=True)
    with out.open("a") as summary:
        summary.write(line)
