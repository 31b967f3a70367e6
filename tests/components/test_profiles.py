"""Every component profile, checked offline against Dapr's own definitions: the CRD schemas
and the components' documented metadata, both from the pinned Dapr version's sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.components import dapr_sources

COMPONENTS = dapr_sources.ROOT / "components"
PROFILES = sorted(p.name for p in COMPONENTS.iterdir() if p.is_dir() and p.name != "common")
# Metadata the Dapr runtime reads for every component of a kind, not the component itself.
RUNTIME_METADATA = {"keyPrefix", "consumerID", "actorStateStore", "primaryEncryptionKey"} | {
    "publishingScopes",
    "subscriptionScopes",
}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _components(profile: str) -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted((COMPONENTS / profile).glob("*.yaml"))
        for doc in _documents(path)
        if doc["kind"] == "Component"
    ]


ALL_FILES = sorted(COMPONENTS.rglob("*.yaml"))


def test_the_runnable_and_offline_profiles_are_all_there() -> None:
    assert {"redis", "rabbitmq", "kafka", "azure"} <= set(PROFILES)


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(COMPONENTS)))
def test_every_file_matches_the_dapr_crd_schema(path: Path) -> None:
    for doc in _documents(path):
        assert doc["apiVersion"].startswith("dapr.io/"), path
        jsonschema.validate(doc, dapr_sources.crd_schema(doc["kind"]))


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_has_the_same_component_names_as_redis(profile: str) -> None:
    """The apps name components, never types: a profile must offer every name redis does
    (the azure profile adds its secret store)."""
    expected = {c["metadata"]["name"] for c in _components("redis")}
    assert expected <= {c["metadata"]["name"] for c in _components(profile)}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_metadata_field_is_one_the_component_knows(profile: str) -> None:
    """daprd ignores a misspelt field silently (a timeout that never applies): check each
    name against the component's metadata.yaml in components-contrib."""
    for component in _components(profile):
        spec = component["spec"]
        known = dapr_sources.component_metadata_names(spec["type"], spec["version"])
        for item in spec.get("metadata") or []:
            assert item["name"] in known | RUNTIME_METADATA, (
                f"{profile}: {component['metadata']['name']} ({spec['type']}) has no "
                f"metadata field {item['name']!r}"
            )


@pytest.mark.parametrize("profile", PROFILES)
def test_no_profile_writes_a_secret_or_an_address_in_yaml(profile: str) -> None:
    """Addresses come from daprd's environment (envRef), credentials from a secret store."""
    secret_like = {"connectionString", "password", "masterKey", "redisHost", "brokers"}
    for component in _components(profile):
        for item in component["spec"].get("metadata") or []:
            if item["name"] in secret_like:
                assert "value" not in item, (profile, component["metadata"]["name"], item)
