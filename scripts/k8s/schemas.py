"""Schema checks of rendered manifests, offline.

Built-in kinds are checked against the Kubernetes JSON schemas that the `kubernetes-validate`
package ships, in their strict form (an unknown field is an error, as with
`kubectl apply --validate=strict`). Dapr and KEDA kinds are checked against the
`openAPIV3Schema` of their own CustomResourceDefinitions, read from the Dapr and KEDA Go
modules, made strict the same way: the API server would silently prune a misspelt field of a
custom resource, so a typo in a ScaledObject would deploy and then do nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

Resource = dict[str, Any]
# Versions checked: the oldest minor the manifests support (native `preStop.sleep` is beta
# and on by default from 1.30) and the newest the schema package ships.
KUBERNETES_VERSIONS = ("1.31", "1.37")
PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"


def describe(resource: Resource) -> str:
    return f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"


def strict(schema: Any) -> Any:
    """The schema with unknown fields rejected wherever it lists the known ones."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    lists_fields = "properties" in out and "additionalProperties" not in out
    if lists_fields and not out.get(PRESERVE_UNKNOWN):
        out["additionalProperties"] = False
    return out


class CrdSchemas:
    """Validators for every (apiVersion, kind) served by the CRDs in the given folders."""

    def __init__(self, folders: Iterable[Path]) -> None:
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
        for folder in folders:
            for path in sorted(folder.glob("*.yaml")):
                for crd in yaml.safe_load_all(path.read_text()):
                    if crd and crd.get("kind") == "CustomResourceDefinition":
                        self._add(crd)

    def _add(self, crd: Resource) -> None:
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            # OpenAPI 3.0 schemas are JSON Schema draft 4 in spirit (boolean exclusiveMinimum).
            validator = jsonschema.Draft4Validator(schema)
            self._validators[(f"{group}/{version['name']}", kind)] = validator

    def kinds(self) -> set[tuple[str, str]]:
        return set(self._validators)

    def errors(self, resource: Resource) -> Iterator[str] | None:
        """The resource's schema errors; None when no CRD here defines its kind."""
        validator = self._validators.get((resource.get("apiVersion", ""), resource["kind"]))
        if validator is None:
            return None
        return (_message(error) for error in validator.iter_errors(resource))


def _message(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(part) for part in error.absolute_path) or "(root)"
    return f"{path}: {error.message}"


def builtin_errors(resource: Resource, version: str) -> list[str]:
    """Errors against Kubernetes' own schema at `version`; a kind it lacks is an error too."""
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [_message(error)]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [str(error.message)]
    return []


def validate(resources: list[Resource], crds: CrdSchemas) -> tuple[list[str], dict[str, int]]:
    """Every schema problem of the rendered resources, and a count of what was checked."""
    problems: list[str] = []
    counts = {"kubernetes": 0, "crd": 0}
    for resource in resources:
        crd_errors = crds.errors(resource)
        if crd_errors is not None:
            counts["crd"] += 1
            problems += [f"{describe(resource)}: {message}" for message in crd_errors]
            continue
        counts["kubernetes"] += 1
        for version in KUBERNETES_VERSIONS:
            problems += [
                f"{describe(resource)} (Kubernetes {version}): {message}"
                for message in builtin_errors(resource, version)
            ]
    return problems, counts
