"""The API keys and webhook secrets of the local cluster (scripts/k8s-cluster.sh up).

The same values README "Deploy to Kubernetes" makes by hand with `python -m jobrelay.auth`,
for two tenants (so `make k8s-test` can check that one tenant cannot read the other's jobs).
The Secrets get the tables; the plaintext keys go to a file only root can read, for the test.

Prints shell assignments (API_KEYS=..., WEBHOOK_SECRETS=...) for the caller to source.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from jobrelay import auth, webhook_secrets

TENANTS = ("acme", "globex")


def main(argv: list[str]) -> int:
    keys_file = Path(argv[0])
    keys = {tenant: auth.new_key() for tenant in TENANTS}
    hooks = {tenant: webhook_secrets.new_secret() for tenant in TENANTS}
    keys_file.touch(mode=0o600)
    keys_file.write_text(json.dumps({"api_keys": keys, "webhook_secrets": hooks}, indent=1))
    table = {auth.hash_key(key): tenant for tenant, key in keys.items()}
    sys.stdout.write(f"API_KEYS={shlex.quote(json.dumps(table))}\n")
    sys.stdout.write(f"WEBHOOK_SECRETS={shlex.quote(json.dumps(hooks))}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
