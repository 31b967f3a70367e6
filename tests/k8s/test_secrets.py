"""The Secrets the rendered overlays read: each granted only to the apps that need it, and
each one an operator is told to create (docs/deployment.md).

Rendered by the real kustomize, as in test_validate.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts.k8s import policy, validate
from scripts.k8s.schemas import Resource

OVERLAYS = sorted(p for p in validate.OVERLAYS.iterdir() if p.is_dir())
DEPLOYMENT = validate.REPO / "docs" / "deployment.md"
# The key encrypting `statestore` (k8s/overlays/*/state-key.yaml).
STATE_KEY = "jobrelay-state-key"


@pytest.fixture(scope="module")
def kustomize() -> Path:
    return validate.tools().kustomize


def _documented_secrets() -> set[str]:
    """The first column of the Secrets table in docs/deployment.md."""
    section = DEPLOYMENT.read_text()
    return set(re.findall(r"^\| `([a-z0-9.-]+)`", section, flags=re.MULTILINE))


def _render(kustomize: Path, overlay: Path) -> list[Resource]:
    return validate.render(kustomize, overlay)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_every_secret_an_overlay_reads_is_in_the_deployment_table(
    kustomize: Path, overlay: Path
) -> None:
    referenced = policy.referenced_secrets(_render(kustomize, overlay))
    assert STATE_KEY in referenced
    assert referenced - _documented_secrets() == set()


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_each_sidecar_may_read_only_the_secrets_it_needs(kustomize: Path, overlay: Path) -> None:
    resources = _render(kustomize, overlay)
    # Where Redis runs in the cluster, `statestore` (keyed through jobrelay-keys) reads its
    # password through the same store.
    # (go-worker is the local overlay with another worker image.)
    in_cluster_redis = ("local", "kafka", "go-worker")
    redis = {"jobrelay-redis-auth"} if overlay.name in in_cluster_redis else set()
    assert policy.secrets_granted(resources, "worker") == {STATE_KEY, *redis}
    assert policy.secrets_granted(resources, "intake") == {
        STATE_KEY,
        "jobrelay-api-keys",
        *redis,
    }
    assert policy.secrets_granted(resources, "status") == {
        STATE_KEY,
        "jobrelay-api-keys",
        "jobrelay-webhook-secrets",  # only status signs webhooks
        *redis,
    }
    assert policy.secrets_granted(resources, "model") == set()


def test_a_role_without_resource_names_grants_every_secret() -> None:
    resources: list[Resource] = [
        {
            "kind": "Role",
            "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}],
        },
        {
            "kind": "RoleBinding",
            "metadata": {"name": "r"},
            "roleRef": {"name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "worker"}],
        },
    ]
    assert policy.secrets_granted(resources, "worker") == {"*"}
    assert policy.secrets_granted(resources, "intake") == set()
