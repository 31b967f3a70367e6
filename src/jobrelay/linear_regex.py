"""Regular expressions from clients, run by RE2: time linear in the text, never backtracking.

Python's `re` backtracks: `^(a+)+$` takes seconds on 26 characters and doubles with each one
more, which lets a 20-byte `pattern` in an `extract` schema freeze a worker. RE2 (Google's
engine, the `google-re2` wheel) guarantees linear time by refusing the features that need
backtracking (backreferences, lookaround), so a pattern that compiles here is safe to run on
any text. Errors are not logged by RE2 itself: a client's bad pattern is the client's 422,
not a line in the operator's log.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

# Compiled programs are bounded by RE2's own memory budget (8 MiB by default): a pattern
# whose automaton would need more fails to compile rather than growing without bound.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


class UnsupportedPattern(ValueError):
    """The pattern is not one RE2 runs: it needs backtracking, or it is malformed."""


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The compiled pattern; UnsupportedPattern with RE2's reason if it will not compile."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise UnsupportedPattern(str(reason)) from None


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text` (JSON Schema's `pattern` semantics)."""
    return compile_pattern(pattern).search(text) is not None
