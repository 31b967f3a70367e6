"""k8s/dapr/ is generated from components/ and must not drift from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scripts.k8s import dapr_resources

REPO = dapr_resources.REPO


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """components/ and k8s/dapr/ copied out, so a test can edit them freely."""
    for folder in ("components", "k8s/dapr"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path


def test_generated_dapr_resources_match_components() -> None:
    assert dapr_resources.drift() == [], "run `make k8s-generate` and commit k8s/dapr/"


def test_every_profile_folder_is_generated_verbatim() -> None:
    for folder in (REPO / "components").iterdir():
        if folder.is_dir():
            for source in folder.glob("*.yaml"):
                copy = REPO / "k8s" / "dapr" / folder.name / source.name
                assert copy.read_text().endswith(source.read_text())


def test_edited_component_is_reported_as_drift(repo_copy: Path) -> None:
    pubsub = repo_copy / "components" / "redis" / "pubsub.yaml"
    pubsub.write_text(pubsub.read_text().replace('value: "300s"', 'value: "301s"'))
    assert dapr_resources.drift(repo_copy) == [
        "k8s/dapr/redis/pubsub.yaml: differs from its source"
    ]


def test_new_profile_is_reported_missing_until_generated(repo_copy: Path) -> None:
    profile = repo_copy / "components" / "postgres"
    profile.mkdir()
    (profile / "statestore.yaml").write_text("kind: Component\n")
    assert dapr_resources.drift(repo_copy) == [
        "k8s/dapr/postgres/kustomization.yaml: missing",
        "k8s/dapr/postgres/statestore.yaml: missing",
    ]
    dapr_resources.write(repo_copy)
    assert dapr_resources.drift(repo_copy) == []


def test_removed_profile_is_reported_stale_and_generation_removes_it(repo_copy: Path) -> None:
    shutil.rmtree(repo_copy / "components" / "redis")
    assert "k8s/dapr/redis/pubsub.yaml: stale, no source in components/" in (
        dapr_resources.drift(repo_copy)
    )
    dapr_resources.write(repo_copy)
    assert dapr_resources.drift(repo_copy) == []
    assert not (repo_copy / "k8s" / "dapr" / "redis").exists()
