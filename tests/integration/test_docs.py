"""The docs' examples, run against the real stack, so what the docs show stays what jobrelay
does (tests/doc_examples.py says which blocks are examples).

Each console block runs as one bash script in a folder of its own (its commands share shell
variables, as in a terminal), with `.venv` beside it and the files the examples upload. The
docs address `make run`'s ports on loopback without credentials; here a `curl` first on PATH
sends the same requests to this stack's ports with the tenant's API key (the operator's for
the admin routes), and the client and CLI read the stack's addresses and key from the
environment they document. A command passes when it exits 0, answers the HTTP status its
transcript shows, and answers no error body where its transcript shows none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import documents
from tests.doc_examples import ROOT, Example, examples, pages
from tests.integration import profiles
from tests.integration.stack import API_KEYS, OPERATOR, Stack

EXAMPLES = [example for page in pages() for example in examples(page)]
_ERROR_BODY = '"error":{"code"'

_CURL = """#!/usr/bin/env bash
# The docs' curl, pointed at the test stack: its addresses, and the caller's API key.
key=$JOBRELAY_API_KEY
args=()
for a in "$@"; do
  case $a in
    http://127.0.0.1:8000*) a=$JOBRELAY_INTAKE_URL${a#http://127.0.0.1:8000} ;;
    http://127.0.0.1:8001*) a=$JOBRELAY_STATUS_URL${a#http://127.0.0.1:8001} ;;
    :8000/*) a=$JOBRELAY_INTAKE_URL${a#:8000} ;;
    :8001/*) a=$JOBRELAY_STATUS_URL${a#:8001} ;;
  esac
  [[ $a == */admin/* ]] && key=$JOBRELAY_DOCS_OPERATOR_KEY
  args+=("$a")
done
exec %s --max-time 90 -H "Authorization: Bearer $key" "${args[@]}"
"""


def _folder(tmp_path: Path, stack: Stack) -> tuple[Path, dict[str, str]]:
    """Where an example runs, and its environment."""
    real_curl = shutil.which("curl")
    assert real_curl is not None, "the docs' examples use curl"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(_CURL % real_curl)
    (bin_dir / "curl").chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    (work / "invoice.png").write_bytes(documents.invoice())
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "JOBRELAY_INTAKE_URL": stack.url("intake"),
        "JOBRELAY_STATUS_URL": stack.url("status"),
        "JOBRELAY_API_KEY": API_KEYS["default"],
        "JOBRELAY_DOCS_OPERATOR_KEY": API_KEYS[OPERATOR],
        "COLUMNS": "100",
    }
    return work, env


def _script(example: Example) -> str:
    steps = [
        f"{{ {command.text}\n}} >out.{i} 2>err.{i}; echo $? >rc.{i}"
        for i, command in enumerate(example.commands)
    ]
    return "\n".join(steps) + "\n"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_the_docs_example_does_what_it_shows(
    example: Example, stack: Stack, tmp_path: Path
) -> None:
    if stack.profile != profiles.selected()[0]:
        pytest.skip("the docs name no broker: one profile is enough")
    work, env = _folder(tmp_path, stack)
    if example.kind == "python":
        ran = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "-c", example.code],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ran.returncode == 0, f"{example.name}:\n{ran.stdout}\n{ran.stderr}"
        return
    subprocess.run(["bash", "-c", _script(example)], cwd=work, env=env, check=False, timeout=600)
    for i, command in enumerate(example.commands):
        printed = (work / f"out.{i}").read_text()
        stderr = (work / f"err.{i}").read_text()
        where = f"{example.name}, `{command.text.splitlines()[0]}`:\n{printed[-2000:]}{stderr}"
        assert (work / f"rc.{i}").read_text().strip() == "0", where
        if command.status_line is not None:
            assert printed.split(maxsplit=2)[1:2] == [command.status_line], where
        if _ERROR_BODY not in "".join(command.printed):
            assert _ERROR_BODY not in printed.replace(" ", ""), where
