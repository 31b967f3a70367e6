"""The client installs light: a fresh virtualenv gets the SDK and the `jobrelay` command from
packages/contract and packages/client, and none of the server's runtime.

Real pip from the package index (its cache makes a rerun quick), into a throwaway venv.
"""

from __future__ import annotations

import subprocess
import tomllib
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# What only the server needs: the sidecar's SDK, the web framework, the inference engines.
SERVER_ONLY = {"dapr", "dapr-ext-fastapi", "fastapi", "onnxruntime", "xllamacpp", "uvicorn"}


def _names(requirements: list[str]) -> set[str]:
    return {r.split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip() for r in requirements}


@pytest.mark.parametrize("package", ["contract", "client"])
def test_the_client_distributions_declare_no_server_dependency(package: str) -> None:
    project = tomllib.loads((REPO / "packages" / package / "pyproject.toml").read_text())
    assert not _names(project["project"]["dependencies"]) & SERVER_ONLY


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("client-venv")
    venv.create(home, with_pip=True)
    pip = [str(home / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    contract, client = REPO / "packages" / "contract", REPO / "packages" / "client"
    subprocess.run([*pip, "install", str(contract), str(client)], check=True, timeout=600)
    return home


def test_a_fresh_venv_installs_the_client_without_the_server(client_venv: Path) -> None:
    listed = subprocess.run(
        [str(client_venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    installed = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert {"jobrelay-client", "jobrelay-contract"} <= installed
    assert not installed & SERVER_ONLY, installed & SERVER_ONLY
    assert "jobrelay" not in installed  # the server runtime


def test_the_installed_command_runs(client_venv: Path) -> None:
    shown = subprocess.run(
        [str(client_venv / "bin" / "jobrelay"), "submit", "--help"],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "100"},
    ).stdout
    assert "Submit a job" in shown
    # The SDK imports too, outside the checkout.
    subprocess.run(
        [str(client_venv / "bin" / "python"), "-c", "import jobrelay.client, jobrelay.contract"],
        check=True,
        cwd=client_venv,
    )
