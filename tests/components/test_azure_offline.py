"""The azure profile on the real daprd, without Azure: daprd must load every file and
fail only where it first has to reach Azure, never on a setting it cannot read."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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
}


def _daprd_log(tmp_path: Path) -> str:
    daprd = dapr_runtime() / ".dapr" / "bin" / "daprd"
    ports = [str(free_port()) for _ in range(4)]
    log = tmp_path / "daprd.log"
    with log.open("wb") as out:
        # daprd exits by itself once a component fails to initialise (Cosmos DB's 10 s
        # init timeout); the timeout only guards against a daprd that hangs.
        subprocess.run(
            [
                str(daprd),
                "--app-id=worker",
                f"--resources-path={ROOT / 'components' / 'azure'}",
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
            timeout=90,
            check=False,
        )
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
    # Cosmos DB reads its account at init: the one failure, and it is the network's.
    failures = [line for line in log.splitlines() if "level=error" in line]
    assert failures, log
    for line in failures:
        assert "statestore (state.azure.cosmosdb/v1)" in line, line
        assert "jobrelay-offline.documents.azure.com" in line, line
