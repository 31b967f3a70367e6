"""The examples in README.md and docs/*.md, read as the tests run them.

A ```console block is a transcript: each `$ ` line (with its `\\` continuations, or the
lines of a `for ...; do` it opens) is a command, and what follows until the next `$ ` is what
it printed. A ```python block is a program. Every other block (```bash, ```text, ...) is shown,
never run: `make run`, kubectl, a receiver that runs until Ctrl-C. The generated pages
(benchmarks, reliability, local-model) are the suites' outputs, not examples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = {"benchmarks.md", "reliability.md", "local-model.md"}
_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>\w*)\s*$")


@dataclass
class Command:
    text: str  # what to run, continuation lines joined as the shell reads them
    printed: list[str] = field(default_factory=list)  # what the transcript shows it printed

    @property
    def status_line(self) -> str | None:
        """The HTTP status the transcript shows (`curl -i`), if it shows one."""
        if self.printed and self.printed[0].startswith("HTTP/1.1 "):
            return self.printed[0].split()[1]
        return None


@dataclass
class Example:
    path: Path
    line: int  # where its block starts, 1-based
    kind: str  # "console" or "python"
    commands: list[Command] = field(default_factory=list)
    code: str = ""

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    docs = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in GENERATED)
    return [ROOT / "README.md", *docs]


def examples(path: Path) -> list[Example]:
    found: list[Example] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if opened is None:
            i += 1
            continue
        indent, info, start = len(opened["indent"]), opened["info"], i + 1
        body: list[str] = []
        i += 1
        while i < len(lines) and not _FENCE.match(lines[i]):
            body.append(lines[i][indent:])
            i += 1
        i += 1
        if info == "console":
            found.append(Example(path, start, info, commands=_transcript(body)))
        elif info == "python":
            found.append(Example(path, start, info, code="\n".join(body) + "\n"))
    return found


def _transcript(body: list[str]) -> list[Command]:
    commands: list[Command] = []
    continuing = False
    for line in body:
        if line.startswith("$ ") and not continuing:
            commands.append(Command(line[2:]))
        elif continuing:
            commands[-1].text += "\n" + line
        elif commands:
            commands[-1].printed.append(line)
        text = commands[-1].text if commands else ""
        last = text.splitlines()[-1] if text else ""
        # A command goes on past a trailing backslash, an unclosed quote, or an open loop.
        continuing = (
            bool(commands)
            and not commands[-1].printed
            and (last.endswith("\\") or text.count("'") % 2 == 1 or _open_loop(text))
        )
    return commands


def _open_loop(text: str) -> bool:
    return len(re.findall(r"\bdo\b", text)) > len(re.findall(r"\bdone\b", text))
