"""`make k8s-validate`: render every overlay with kustomize and check it, offline.

1. k8s/dapr/ must match components/ (scripts/k8s/dapr_resources.py);
2. every folder under k8s/overlays/ must render with kustomize;
3. every rendered resource must pass its schema: Kubernetes' own for built-in kinds, the Dapr
   or KEDA CRD's for theirs, unknown fields rejected (scripts/k8s/schemas.py);
4. and the overlay must keep the rules in scripts/k8s/policy.py.

The tools come from scripts/k8s-tools.sh (kustomize built from its Go module, the CRDs from the
Dapr and KEDA modules), cached outside the clone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from scripts.k8s import dapr_resources, policy
from scripts.k8s.schemas import CrdSchemas, Resource, validate

REPO = dapr_resources.REPO
OVERLAYS = REPO / "k8s" / "overlays"


@dataclass(frozen=True)
class Tools:
    kustomize: Path
    crd_folders: tuple[Path, ...]


def tools() -> Tools:
    """Builds or finds kustomize and the CRD folders (slow only the first time)."""
    # The project's own script, by a fixed path: no untrusted input reaches the command.
    script = str(REPO / "scripts" / "k8s-tools.sh")
    out = subprocess.run([script], check=True, capture_output=True, text=True).stdout  # noqa: S603
    paths = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return Tools(Path(paths["KUSTOMIZE"]), (Path(paths["DAPR_CRDS"]), Path(paths["KEDA_CRDS"])))


def render(kustomize: Path, overlay: Path) -> list[Resource]:
    """The overlay's resources as kustomize builds them; CalledProcessError if it cannot."""
    command = [str(kustomize), "build", str(overlay)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout  # noqa: S603
    return [doc for doc in yaml.safe_load_all(out) if doc]


def check_overlay(tools_: Tools, crds: CrdSchemas, overlay: Path) -> list[str]:
    """Every problem of one overlay; empty when it renders and passes every check."""
    try:
        resources = render(tools_.kustomize, overlay)
    except subprocess.CalledProcessError as error:
        return [f"kustomize build failed: {error.stderr.strip()}"]
    problems, counts = validate(resources, crds)
    problems += policy.check(resources)
    sys.stdout.write(
        f"k8s-validate: {overlay.name}: {len(resources)} resources "
        f"({counts['kubernetes']} against the Kubernetes schemas, "
        f"{counts['crd']} against Dapr/KEDA CRDs): "
        f"{'ok' if not problems else f'{len(problems)} problems'}\n"
    )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render and validate the k8s/ overlays.")
    parser.add_argument("overlays", nargs="*", type=Path, help="default: all of k8s/overlays/")
    args = parser.parse_args(argv)
    overlays: list[Path] = args.overlays or sorted(p for p in OVERLAYS.iterdir() if p.is_dir())
    failed = False
    if not args.overlays:
        for problem in dapr_resources.drift():
            sys.stderr.write(f"k8s-validate: k8s/dapr drift: {problem} (make k8s-generate)\n")
            failed = True
    started = time.monotonic()
    tools_ = tools()
    crds = CrdSchemas(tools_.crd_folders)
    for overlay in overlays:
        for problem in check_overlay(tools_, crds, overlay):
            sys.stderr.write(f"k8s-validate: {overlay.name}: {problem}\n")
            failed = True
    sys.stdout.write(
        f"k8s-validate: {len(overlays)} overlays checked in {time.monotonic() - started:.1f} s\n"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
