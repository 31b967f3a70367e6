"""jobrelay.extract_schema through the extract task's params: the schemas intake refuses
before any validator runs on them, and the ones it lets through (issue 17, High 1)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from jobrelay.task_catalog import parse_params


def doubling(levels: int) -> dict[str, Any]:
    """The issue's schema: each level two $refs to the one below, so 2**levels subschemas."""
    defs: dict[str, Any] = {"d0": {}}
    for i in range(1, levels + 1):
        defs[f"d{i}"] = {"allOf": [{"$ref": f"#/$defs/d{i - 1}"}, {"$ref": f"#/$defs/d{i - 1}"}]}
    return {"$defs": defs, "$ref": f"#/$defs/d{levels}"}


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    return schema


def refusal(schema: Any) -> tuple[str, str]:
    """(error type, message) of the one refusal of `schema` as extract's params."""
    with pytest.raises(ValidationError) as raised:
        parse_params("extract", {"schema": schema})
    error = raised.value.errors()[0]
    return error["type"], error["msg"]


def test_the_doubling_ref_schema_is_refused_at_once() -> None:
    started = time.monotonic()
    kind, message = refusal(doubling(40))
    assert kind == "schema_too_complex"
    assert "$ref followed" in message
    assert time.monotonic() - started < 1


def test_nesting_past_the_limit_is_refused_not_a_recursion_error() -> None:
    # 150 levels crashed jsonschema's check_schema with RecursionError (a 500 at submit).
    assert refusal(nested(150))[0] == "schema_too_complex"
    parse_params("extract", {"schema": nested(20)})


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {"properties": {"again": {"$ref": "#"}}},
        {"$ref": "https://example.com/schema.json"},
        {"$ref": "#anchor"},
        {"$ref": "#/$defs/missing"},
        {"$dynamicRef": "#meta"},
        {"properties": {"x": {"$id": "https://example.com/x", "type": "string"}}},
    ],
    ids=["cycle", "self", "remote", "anchor", "missing", "dynamic", "nested-id"],
)
def test_refs_that_cannot_be_bounded_are_not_supported(schema: dict[str, Any]) -> None:
    assert refusal(schema)[0] == "schema_not_supported"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "(a)\\1"},  # a backreference
        {"type": "string", "pattern": "^(?!x)"},  # lookahead
        {"type": "object", "patternProperties": {"(?<=a)b": {}}},  # lookbehind
    ],
    ids=["backreference", "lookahead", "lookbehind"],
)
def test_patterns_that_need_backtracking_are_not_supported(schema: dict[str, Any]) -> None:
    kind, message = refusal(schema)
    assert kind == "schema_not_supported"
    assert "linear time" in message


def test_a_pattern_that_backtracks_in_python_is_accepted_since_re2_runs_it() -> None:
    parse_params("extract", {"schema": {"type": "string", "pattern": "^(a+)+$"}})


def test_a_schema_over_the_size_limit_is_refused() -> None:
    big = {"type": "object", "properties": {f"field_{i}": {"type": "string"} for i in range(800)}}
    kind, message = refusal(big)
    assert kind == "schema_too_complex"
    assert "bytes" in message


def test_an_ordinary_schema_with_shared_definitions_is_accepted() -> None:
    address = {"type": "object", "properties": {"city": {"type": "string"}}}
    schema = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Z][a-z]+( [A-Z][a-z]+)*$"},
            "home": {"$ref": "#/$defs/address"},
            "work": {"$ref": "#/$defs/address"},
            "phones": {"type": "array", "items": {"type": "string"}},
        },
        "$defs": {"address": address},
    }
    parse_params("extract", {"schema": schema})
