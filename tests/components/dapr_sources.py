"""Dapr's own published files for the pinned version, read offline from the Go module cache
that scripts/dapr-build.sh fills: the CRD schemas (charts/dapr/crds/) of the dapr module and
each component's metadata.yaml in components-contrib."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _pinned(name: str) -> str:
    text = (ROOT / "scripts" / "versions.sh").read_text()
    match = re.search(rf"^{name}=(\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in scripts/versions.sh"
    return match[1]


@functools.cache
def module_dir(module: str, version: str = "", inside: Path | None = None) -> Path:
    """The module's folder in the Go module cache (downloaded if missing, as dapr-build does).
    Without a version, the one that the module at `inside` requires, checked against its
    go.sum (the checksum database is not reachable here for every module)."""
    env = {
        **os.environ,
        "GOPROXY": os.environ.get("JOBRELAY_GOPROXY", "https://proxy.golang.org"),
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=mod",
    }
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@v{version}" if version else module],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=inside,
    )
    return Path(json.loads(out.stdout)["Dir"])


def dapr_dir() -> Path:
    return module_dir("github.com/dapr/dapr", _pinned("DAPR_RUNTIME_VERSION"))


def contrib_dir() -> Path:
    """components-contrib at the version the pinned daprd was built with (its go.mod)."""
    return module_dir("github.com/dapr/components-contrib", inside=dapr_dir())


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of Dapr's CRD for `kind` (Component, Resiliency, Configuration)."""
    for path in sorted((dapr_dir() / "charts" / "dapr" / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["spec"]["names"]["kind"] == kind:
                schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
                return schema
    raise LookupError(f"no Dapr CRD for kind {kind}")


def component_metadata_names(component_type: str, version: str) -> set[str]:
    """Every metadata field a component type documents, in all its auth profiles."""
    kind, _, rest = component_type.partition(".")
    base = contrib_dir() / kind / Path(*rest.split("."))
    path = next(p for p in (base / version / "metadata.yaml", base / "metadata.yaml") if p.exists())
    spec = yaml.safe_load(path.read_text())
    names = {m["name"] for m in spec.get("metadata") or []}
    for profile in spec.get("authenticationProfiles") or []:
        names |= {m["name"] for m in profile.get("metadata") or []}
    return names
