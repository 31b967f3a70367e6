"""make k8s-validate: every overlay passes, and a broken manifest fails (the check can fail).

These run the real kustomize (built from its Go module by scripts/k8s-tools.sh, cached) and
the real Kubernetes, Dapr and KEDA schemas; nothing is faked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.k8s import validate
from scripts.k8s.schemas import CrdSchemas

OVERLAYS = sorted(p for p in validate.OVERLAYS.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def tools() -> validate.Tools:
    return validate.tools()


@pytest.fixture(scope="module")
def crds(tools: validate.Tools) -> CrdSchemas:
    return CrdSchemas(tools.crd_folders)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_overlay_renders_and_passes_every_check(
    tools: validate.Tools, crds: CrdSchemas, overlay: Path
) -> None:
    assert validate.check_overlay(tools, crds, overlay) == []


def _broken(tmp_path: Path, patch: str) -> Path:
    """The local overlay plus one patch: the smallest change that should fail the check."""
    (tmp_path / "patch.yaml").write_text(patch)
    # Relative: kustomize refuses an absolute path to a base.
    local = os.path.relpath(validate.OVERLAYS / "local", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"resources:\n  - {local}\npatches:\n  - path: patch.yaml\n"
    )
    return tmp_path


BROKEN = {
    # A built-in kind against Kubernetes' schema: replicas must be an integer.
    "kubernetes-type": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: model}\nspec: {replicas: two}\n",
        "Deployment/model (Kubernetes 1.31): spec.replicas: 'two' is not of type 'integer'",
    ),
    # A misspelt field the API server would accept and prune: strict schemas reject it.
    "kubernetes-unknown-field": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: model}\nspec: {replica: 2}\n",
        "Deployment/model (Kubernetes 1.31): spec: Additional properties are not allowed",
    ),
    # A Dapr kind against Dapr's CRD: a Component's metadata items need a name.
    "dapr-crd": (
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: pubsub}\n"
        "spec:\n  metadata:\n    - value: x\n",
        "Component/pubsub: spec.metadata.0: 'name' is a required property",
    ),
    # A KEDA kind against KEDA's CRD: a misspelt field would silently do nothing.
    "keda-crd": (
        "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: worker}\n"
        "spec: {minReplicas: 0}\n",
        "ScaledObject/worker: spec: Additional properties are not allowed ('minReplicas'",
    ),
    # A rule no schema knows: components read JOBRELAY_REDIS_HOST, daprd must be given it.
    "env-ref-unmapped": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: worker}\n"
        "spec:\n  template:\n    metadata:\n      annotations:\n"
        "        dapr.io/env: OTHER=1\n",
        "Deployment/worker: Component/pubsub reads envRef JOBRELAY_REDIS_HOST",
    ),
    # The sidecar demands a token the app is not given: every SDK call would be refused.
    "api-token-not-shared": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: worker}\n"
        "spec:\n  template:\n    metadata:\n      annotations:\n"
        "        dapr.io/api-token-secret: another-token\n",
        "Deployment/worker container worker: DAPR_API_TOKEN is not read from Secret another-token",
    ),
    # A component pointing at a secret store the overlay does not have (azure deletes one).
    "missing-secret-store": (
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: pubsub}\n"
        "auth: {secretStore: secrets}\n",
        "Component/pubsub: auth.secretStore secrets is no secret store here",
    ),
    # A sidecar that loads the encrypted store but not the store of its key: daprd would
    # write that app's state in plaintext, silently.
    "key-store-not-loaded": (
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: jobrelay-keys}\n"
        "scopes: [intake, status]\n",
        "Component/statestore: worker's sidecar does not load jobrelay-keys (its scopes), "
        "so it would store plaintext",
    ),
    "key-store-missing": (
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: statestore}\n"
        "auth: {secretStore: env-keys}\n",
        "Component/statestore: encrypted with a key from env-keys, which is no secret store",
    ),
    # The key Secret renamed (a rotation) without granting it: the sidecars would not start.
    "key-secret-not-granted": (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n"
        "metadata: {name: jobrelay-keys-reader}\nrules:\n"
        "  - {apiGroups: [''], resources: [secrets], resourceNames: [other], verbs: [get]}\n",
        "Deployment/worker: Component/statestore: ServiceAccount worker may not get Secret "
        "jobrelay-state-key",
    ),
    # The worker's daprd without the API token it reads the key Secret with.
    "worker-without-api-token": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: worker}\n"
        "spec:\n  template:\n    metadata:\n      annotations:\n"
        "        dapr.io/volume-mounts: null\n",
        "Deployment/worker: Component/statestore: daprd has no Kubernetes API token",
    ),
    # A value a replacement should have filled in.
    "placeholder-left": (
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: worker\n"
        "  annotations: {example.com/id: from-replacements}\n",
        "ServiceAccount/worker: still holds the placeholder from-replacements",
    ),
    # The app is no longer read-only and non-root.
    "writable-root": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: intake}\n"
        "spec:\n  template:\n    spec:\n      containers:\n        - name: intake\n"
        "          securityContext: {readOnlyRootFilesystem: false}\n",
        "Deployment/intake container intake: root filesystem is writable",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_manifest_fails_validation(
    tools: validate.Tools, crds: CrdSchemas, tmp_path: Path, case: str
) -> None:
    patch, expected = BROKEN[case]
    problems = validate.check_overlay(tools, crds, _broken(tmp_path, patch))
    assert any(expected in problem for problem in problems), problems


def test_validate_command_exits_nonzero_on_a_broken_overlay(tmp_path: Path) -> None:
    patch, _ = BROKEN["keda-crd"]
    assert validate.main([str(_broken(tmp_path, patch))]) == 1


def test_overlay_that_kustomize_cannot_build_fails(
    tools: validate.Tools, crds: CrdSchemas, tmp_path: Path
) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    [problem] = validate.check_overlay(tools, crds, tmp_path)
    assert problem.startswith("kustomize build failed:")
