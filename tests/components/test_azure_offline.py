"""The azure profile on the real daprd, without Azure: daprd must load every file and
fail only where it first has to reach Azure, never on a setting it cannot read.

The Cosmos DB store reads its account at init, and daprd stops at the first component that
fails, so the test runs a copy of the profile whose Cosmos DB component carries
`ignoreErrors: true`: daprd then goes on to load everything else, and the store's failure
shows in the log."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import yaml

from tests.components.dapr_sources import ROOT
from tests.integration.stack import dapr_runtime
from tests.ports import free_port

# Well-formed credentials for namespaces and accounts that do not exist: their names do not
# resolve, so daprd gets as far as connecting and no further.
OFFLINE_AZURE = {
    "JOBRELAY_AZURE_SERVICEBUS_CONNECTION": "Endpoint=sb://jobrelay-offline.servicebus.windows"
    ".net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=b2ZmbGluZQ==",
    "JOBRELAY_AZURE_COSMOS_URL": "https://jobrelay-offline.documents.azure.com:443/",
    "JOBRELAY_AZURE_COSMOS_KEY": "b2ZmbGluZQ==",
    "JOBRELAY_AZURE_STATE": "00" * 32,  # the state store's AES-256 key
}
COSMOS = "state.azure.cosmosdb"


def _profile_past_cosmos(tmp_path: Path) -> Path:
    """components/azure, with its Cosmos DB components told to let daprd go on."""
    copy = tmp_path / "azure"
    copy.mkdir()
    for path in (ROOT / "components" / "azure").glob("*.yaml"):
        component = yaml.safe_load(path.read_text())
        if component["spec"]["type"] == COSMOS:
            component["spec"]["ignoreErrors"] = True
        (copy / path.name).write_text(yaml.safe_dump(component))
    return copy


def _daprd_log(tmp_path: Path) -> str:
    daprd = dapr_runtime() / ".dapr" / "bin" / "daprd"
    ports = [str(free_port()) for _ in range(4)]
    log = tmp_path / "daprd.log"
    with log.open("wb") as out:
        daprd_process = subprocess.Popen(
            [
                str(daprd),
                "--app-id=worker",
                f"--resources-path={_profile_past_cosmos(tmp_path)}",
                f"--resources-path={ROOT / 'components' / 'common'}",
                f"--config={ROOT / 'components' / 'config.yaml'}",
                f"--dapr-http-port={ports[0]}",
                f"--dapr-grpc-port={ports[1]}",
                f"--dapr-internal-grpc-port={ports[2]}",
                f"--metrics-port={ports[3]}",
                "--placement-host-address=",
                "--log-level=info",
            ],
            env={**os.environ, **OFFLINE_AZURE},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    # Cosmos DB gives up on an account it cannot reach after its 10 s init timeout; daprd
    # then goes on, and says so once every component has had its turn.
    try:
        deadline = time.monotonic() + 90
        while "dapr initialized" not in log.read_text() and daprd_process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
    finally:
        daprd_process.terminate()
        daprd_process.wait(timeout=30)
    return log.read_text()


def test_daprd_loads_the_azure_profile_and_fails_only_on_reaching_azure(tmp_path: Path) -> None:
    log = _daprd_log(tmp_path)

    # The secret store, and both Service Bus components, whose connection string came out
    # of it: loaded (Service Bus connects lazily, on first publish or subscribe).
    for loaded in (
        "Component loaded: secrets (secretstores.local.env/v1)",
        "Component loaded: pubsub (pubsub.azure.servicebus.topics/v1)",
        "Component loaded: events (pubsub.azure.servicebus.topics/v1)",
        "Loading Resiliency configuration: jobrelay",
    ):
        assert loaded in log, log
    # Cosmos DB reads its account at init: the only failures, and they are the network's.
    failures = [line for line in log.splitlines() if "level=error" in line]
    assert any(f"statestore ({COSMOS}/v1)" in line for line in failures), log
    for line in failures:
        assert f"({COSMOS}/v1)" in line, line
        assert "jobrelay-offline.documents.azure.com" in line, line
