"""What an `extract` schema may be, checked before anything validates against it.

The worker validates a model's output against the client's schema. Left unbounded, that is
the client's program running on a shared worker: two `$ref`s per level double the work at
every level (40 levels: 2**40 subschemas for one value), a backtracking `pattern` takes
seconds per character, and nesting deeper than Python's recursion limit crashes the
validator. So a schema is refused at submit unless:

- it is at most `schema_bytes` long and `schema_depth` deep;
- its `$ref`s are local JSON pointers (`#/$defs/name`), form no cycle, and, all followed,
  make at most `schema_expanded_nodes` subschemas;
- every `pattern` and `patternProperties` key compiles in RE2 (jobrelay.linear_regex).

Every walk here keeps its own stack: a schema must not be able to crash its own check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from jobrelay.linear_regex import UnsupportedPattern, compile_pattern
from jobrelay.task_limits import TaskLimits

# JSON Schema 2020-12 keywords whose values are subschemas that apply to the instance (or a
# part of it), by shape. `$defs` holds subschemas too, but they apply only through a `$ref`.
_ONE = (
    "additionalProperties",
    "propertyNames",
    "items",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
    "additionalItems",  # draft 2019 and older, still honoured by some validators
)
_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "patternProperties", "dependentSchemas")
_DEFS = ("$defs", "definitions")
# Keywords whose resolution depends on the evaluation path or on other resources: not
# needed to describe what to extract, and not boundable by reading the schema.
_REFUSED_KEYWORDS = ("$dynamicRef", "$recursiveRef", "$dynamicAnchor", "$recursiveAnchor")

Pointer = str


class SchemaRefused(ValueError):
    """The schema is outside what jobrelay validates against; `code` says which way."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def too_complex(message: str) -> SchemaRefused:
    return SchemaRefused("schema_too_complex", message)


def not_supported(message: str) -> SchemaRefused:
    return SchemaRefused("schema_not_supported", message)


def check(schema: Any, limits: TaskLimits) -> None:
    """SchemaRefused unless `schema` is within `limits` (see the module's docstring)."""
    _check_depth(schema, limits.schema_depth)
    size = len(json.dumps(schema, separators=(",", ":")))
    if size > limits.schema_bytes:
        raise too_complex(f"the schema is {size} bytes; at most {limits.schema_bytes} are accepted")
    for pointer, node in _subschemas(schema):
        _check_node(pointer, node, limits)
    expanded = _expanded_nodes(schema, limits.schema_expanded_nodes)
    if expanded > limits.schema_expanded_nodes:
        raise too_complex(
            "with every $ref followed the schema has more than "
            f"{limits.schema_expanded_nodes} subschemas, so validating against it could "
            "take unbounded time; reuse fewer definitions or nest them less deeply"
        )


def _check_depth(value: Any, limit: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise too_complex(f"the schema is nested more than {limit} levels deep")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def _children(pointer: Pointer, node: dict[str, Any], defs: bool) -> Iterator[tuple[str, Any]]:
    """(pointer, subschema) of the subschemas written inside `node`; its `$defs` too if
    `defs`."""
    for key in _ONE:
        if key in node:
            yield f"{pointer}/{_escape(key)}", node[key]
    for key in _LIST:
        if isinstance(node.get(key), list):
            for i, item in enumerate(node[key]):
                yield f"{pointer}/{key}/{i}", item
    for key in (*_MAP, *_DEFS) if defs else _MAP:
        if isinstance(node.get(key), dict):
            for name, item in node[key].items():
                yield f"{pointer}/{key}/{_escape(name)}", item


def _subschemas(schema: Any) -> Iterator[tuple[Pointer, dict[str, Any]]]:
    """Every object subschema written in `schema`, `$defs` included, with its pointer."""
    stack: list[tuple[Pointer, Any]] = [("", schema)]
    while stack:
        pointer, node = stack.pop()
        if isinstance(node, dict):
            yield pointer, node
            stack.extend(_children(pointer, node, defs=True))


def _check_node(pointer: Pointer, node: dict[str, Any], limits: TaskLimits) -> None:
    where = pointer or "the root"
    for keyword in _REFUSED_KEYWORDS:
        if keyword in node:
            raise not_supported(f"{keyword} (at {where}) is not supported; use $ref")
    if "$id" in node and pointer:
        raise not_supported(f"$id is only supported at the root (found at {where})")
    ref = node.get("$ref")
    if ref is not None and not (isinstance(ref, str) and (ref == "#" or ref.startswith("#/"))):
        raise not_supported(
            f"$ref {str(ref)[:100]!r} (at {where}): only local JSON pointers such as "
            "'#/$defs/name' are supported"
        )
    patterns = list(node.get("patternProperties") or {})
    if isinstance(node.get("pattern"), str):
        patterns.append(node["pattern"])
    for pattern in patterns:
        _check_pattern(pattern, where, limits)


def _check_pattern(pattern: str, where: str, limits: TaskLimits) -> None:
    if len(pattern) > limits.pattern_chars:
        raise too_complex(f"a pattern at {where} is longer than {limits.pattern_chars} characters")
    try:
        compile_pattern(pattern)
    except UnsupportedPattern as exc:
        raise not_supported(
            f"pattern {pattern[:100]!r} (at {where}) cannot run in linear time ({exc}); "
            "backreferences and lookaround are not supported"
        ) from None


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _resolve(schema: Any, ref: str) -> tuple[Pointer, Any]:
    """The pointer and the subschema a local `$ref` names."""
    pointer = unquote(ref[1:])  # a URI fragment: percent-encoded
    node = schema
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdecimal() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise not_supported(f"$ref {ref[:100]!r} names nothing in the schema")
    if not isinstance(node, dict | bool):
        raise not_supported(f"$ref {ref[:100]!r} does not name a schema")
    # Canonical form (escaped once, no percent-encoding), so two spellings of one target
    # share one entry in the count below.
    return pointer, node


def _expanded_nodes(schema: Any, limit: int) -> int:
    """Subschemas reachable from the root with every `$ref` followed (counted with
    repetition, as a validator visits them), capped at `limit + 1`; SchemaRefused if the
    `$ref`s form a cycle.

    Depth-first with an explicit stack: a node's count is known once all its children's
    are. A node met again while it is still open is its own descendant: a cycle.
    """
    counts: dict[Pointer, int] = {}
    children: dict[Pointer, list[Pointer]] = {}
    open_: set[Pointer] = set()
    stack: list[tuple[Pointer, Any, bool]] = [("", schema, False)]
    while stack:
        pointer, node, closing = stack.pop()
        if closing:
            total = 1 + sum(counts[child] for child in children[pointer])
            counts[pointer] = min(total, limit + 1)
            open_.discard(pointer)
            continue
        if pointer in counts:
            continue
        if pointer in open_:
            raise not_supported(f"$ref cycle through {pointer or 'the root'}: recursive schemas")
        open_.add(pointer)
        stack.append((pointer, node, True))
        kids: list[tuple[Pointer, Any]] = []
        if isinstance(node, dict):
            kids = list(_children(pointer, node, defs=False))
            if isinstance(node.get("$ref"), str):
                kids.append(_resolve(schema, node["$ref"]))
        children[pointer] = [kid for kid, _ in kids]
        for kid, kid_node in kids:
            if kid in open_:
                raise not_supported(f"$ref cycle through {kid or 'the root'}: recursive schemas")
            if kid not in counts:
                stack.append((kid, kid_node, False))
    return counts[""]
