"""Issue 17 in the rendered overlays (Medium 9 and High 3's egress wall): Redis with a
password and an append-only file, every Redis component authenticating, status's egress
closed to private and metadata addresses, one Azure identity per app kept off the app
containers, and the state key closed to every app's secrets API.

Rendered by the real kustomize, as in test_validate.py.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from scripts.k8s import validate
from scripts.k8s.schemas import Resource

OVERLAYS = {p.name: p for p in validate.OVERLAYS.iterdir() if p.is_dir()}
WITH_REDIS = ("local", "kafka")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Resource]]:
    kustomize = validate.tools().kustomize
    return {name: validate.render(kustomize, path) for name, path in OVERLAYS.items()}


def _one(resources: list[Resource], kind: str, name: str) -> dict[str, Any]:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


@pytest.mark.parametrize("overlay", WITH_REDIS)
def test_redis_keeps_its_data_and_asks_for_a_password(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    pod = _one(rendered[overlay], "Deployment", "redis")["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert '""' not in args
    assert "" not in args  # no `--save ""`
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    volume = pod["volumes"][0]
    assert "persistentVolumeClaim" in volume
    _one(rendered[overlay], "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])


@pytest.mark.parametrize("overlay", WITH_REDIS)
def test_every_redis_component_authenticates(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    on_redis = [
        c
        for c in rendered[overlay]
        if c["kind"] == "Component" and str(c["spec"]["type"]).endswith(".redis")
    ]
    assert on_redis
    for component in on_redis:
        names = {m["name"]: m for m in component["spec"]["metadata"]}
        assert names["redisPassword"]["secretKeyRef"]["name"] == "jobrelay-redis-auth"


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_status_egress_is_closed_to_private_and_metadata_addresses(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    policy = _one(rendered[overlay], "NetworkPolicy", "status-egress")
    assert policy["spec"]["policyTypes"] == ["Egress"]
    blocks = [
        peer["ipBlock"]
        for rule in policy["spec"]["egress"]
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    ]
    v4 = next(b for b in blocks if b["cidr"] == "0.0.0.0/0")
    v6 = next(b for b in blocks if b["cidr"] == "::/0")
    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"):
        assert private in v4["except"]
    for embedding in ("64:ff9b::/96", "2002::/16", "fc00::/7"):
        assert embedding in v6["except"]


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_ip_block_is_one_the_api_server_accepts(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    """The API server refuses what the schemas allow: an `except` that is not a strict subset
    of its `cidr`, and IPv4-mapped IPv6 prefixes (`::ffff:0:0/96`; a connection to such an
    address leaves as IPv4, so the IPv4 block's `except` covers it). The real cluster found
    it (docs/kubernetes.md)."""
    for policy in (r for r in rendered[overlay] if r["kind"] == "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []) + policy["spec"].get("ingress", []):
            for peer in rule.get("to", []) + rule.get("from", []):
                if "ipBlock" not in peer:
                    continue
                cidr = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                for excepted in map(ipaddress.ip_network, peer["ipBlock"].get("except", [])):
                    assert excepted.version == cidr.version, (policy["metadata"]["name"], excepted)
                    assert excepted != cidr, excepted
                    assert excepted.subnet_of(cidr), excepted  # type: ignore[arg-type]
                    mapped = excepted.version == 6 and excepted.network_address.ipv4_mapped
                    assert not mapped, (policy["metadata"]["name"], excepted)


def test_each_azure_app_has_its_own_identity_kept_off_its_app_container(
    rendered: dict[str, list[Resource]],
) -> None:
    resources = rendered["azure"]
    ids = {
        app: _one(resources, "ServiceAccount", app)["metadata"]["annotations"][
            "azure.workload.identity/client-id"
        ]
        for app in ("intake", "status", "worker")
    }
    assert len(set(ids.values())) == 3
    for app in ids:
        template = _one(resources, "Deployment", app)["spec"]["template"]
        assert template["metadata"]["annotations"]["azure.workload.identity/skip-containers"] == app
    for component in (r for r in resources if r["kind"] == "Component"):
        names = {m["name"] for m in component["spec"].get("metadata", [])}
        assert "azureClientId" not in names  # each sidecar signs in as its own app


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_no_app_may_read_the_state_key_through_its_sidecar(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    configuration = _one(rendered[overlay], "Configuration", "jobrelay")
    scopes = {s["storeName"]: s for s in configuration["spec"]["secrets"]["scopes"]}
    assert scopes["jobrelay-keys"]["defaultAccess"] == "deny"
    assert not scopes["jobrelay-keys"].get("allowedSecrets")
    assert scopes["jobrelay-secrets"]["defaultAccess"] == "deny"
