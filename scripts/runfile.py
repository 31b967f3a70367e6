"""The Multi-App Run file `make run` starts: dapr.yaml, on the chosen profile's components and
with the chosen worker (`make run WORKER=python|go|both`).

Both workers run under the app id `worker`: the consumer group follows the app id on every
broker, so with WORKER=both the two share one group and each job message goes to one of
them, and the components' scopes (which name `worker`) hold for the Go worker unchanged. The
Go worker gets its own port and folder (the CLI writes each app's log under its folder).

    python -m scripts.runfile PROFILE WORKER GO_BINARY > run-file.yaml
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKERS = ("python", "go", "both")
# The Go worker's port, beside the Python worker's 8003, so WORKER=both can run the two.
GO_WORKER_PORT = 8004


def go_worker(python_worker: dict[str, Any], binary: str) -> dict[str, Any]:
    """The Go worker's entry: the Python worker's sidecar settings (concurrency, health
    check), its own command, port and folder."""
    entry = copy.deepcopy(python_worker)
    entry.update(
        appDirPath="./apps/worker-go",
        appPort=GO_WORKER_PORT,
        command=[binary],
    )
    entry["env"] = {
        **entry.get("env", {}),
        # Absolute: the CLI starts the app in its folder.
        "JOBRELAY_WORKER_MODELS_FILE": str(ROOT / "config" / "models.yaml"),
    }
    return entry


def build(base: dict[str, Any], profile: str, worker: str, binary: str) -> dict[str, Any]:
    if worker not in WORKERS:
        raise ValueError(f"WORKER={worker}: pick one of {', '.join(WORKERS)}")
    run = copy.deepcopy(base)
    run["common"]["resourcesPaths"] = [
        f"./components/{profile}" if path == "./components/redis" else path
        for path in run["common"]["resourcesPaths"]
    ]
    apps: list[dict[str, Any]] = []
    for app in run["apps"]:
        if app["appID"] != "worker":
            apps.append(app)
            continue
        if worker in ("python", "both"):
            apps.append(app)
        if worker in ("go", "both"):
            apps.append(go_worker(app, binary))
    run["apps"] = apps
    return run


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile")
    parser.add_argument("worker", choices=WORKERS)
    parser.add_argument("binary", help="the Go worker (scripts/worker-go-build.sh)")
    args = parser.parse_args(argv)
    base = yaml.safe_load((ROOT / "dapr.yaml").read_text())
    sys.stdout.write(yaml.safe_dump(build(base, args.profile, args.worker, args.binary)))


if __name__ == "__main__":
    main(sys.argv[1:])
