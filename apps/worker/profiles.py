"""Model profiles: the endpoints the worker may call, and each task's ordered fallback list.

Read from one YAML file (config/models.yaml by default) at start-up and validated there, so a
typo fails the worker's start, not a job an hour later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from jobrelay.task_catalog import Capability, Task


class ModelProfile(BaseModel):
    """One model at one endpoint, with the limits its owner must keep to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Profile name, used in fallback lists and job records.")
    kind: Literal["openai", "azure"] = Field(default="openai", description="API flavour.")
    base_url: str = Field(description="OpenAI-compatible base URL (Azure: the endpoint).")
    model: str = Field(description="Model id sent to the endpoint.")
    api_key_env: str | None = Field(default=None, description="Env var holding the API key.")
    azure_deployment: str | None = Field(default=None, description="Azure: deployment name.")
    api_version: str | None = Field(default=None, description="Azure: API version.")
    capabilities: frozenset[Capability] = Field(min_length=1, description="What it can do.")
    max_concurrency: int | None = Field(
        default=None, ge=1, description="Calls in flight across all worker replicas."
    )
    requests_per_minute: int | None = Field(default=None, ge=1, description="Shared rate limit.")
    tokens_per_minute: int | None = Field(default=None, ge=1, description="Shared token limit.")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Longest one call may take.")
    max_attempts: int = Field(
        default=3, ge=1, le=10, description="Tries on this profile before the next one."
    )

    @model_validator(mode="after")
    def _azure_complete(self) -> ModelProfile:
        if self.kind == "azure" and not (self.azure_deployment and self.api_version):
            raise ValueError(
                f"{self.name}: an azure profile needs azure_deployment and api_version"
            )
        return self

    def api_key(self) -> SecretStr:
        if self.api_key_env is None:
            # Local and keyless endpoints ignore the key; the SDK insists on one.
            return SecretStr("none")
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ValueError(
                f"profile {self.name}: environment variable {self.api_key_env} is empty"
            )
        return SecretStr(value)


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    profiles: dict[str, ModelProfile]
    tasks: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_names(self) -> Catalog:
        for task, names in self.tasks.items():
            unknown = [n for n in names if n not in self.profiles]
            if unknown:
                raise ValueError(f"task {task} names unknown profiles: {', '.join(unknown)}")
        return self

    def chain(self, task: str, capability: Capability) -> list[ModelProfile]:
        """The profiles to try for `task`, in order, that have `capability`."""
        names = self.tasks.get(task, [])
        return [p for p in (self.profiles[n] for n in names) if capability in p.capabilities]

    def check(self, tasks: Mapping[str, Task]) -> list[str]:
        """ValueError unless every task has a chain here that can run it, and every chain
        here is for a task. The tasks listed with no model (an empty list: not served by this
        deployment, so their jobs fail at once, saying so)."""
        missing, unknown = (
            sorted(set(tasks) - set(self.tasks)),
            sorted(set(self.tasks) - set(tasks)),
        )
        if missing or unknown:
            raise ValueError(
                "models file: every task needs its list under `tasks:` ([] serves none); "
                f"missing: {', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'}"
            )
        unserved = []
        for name, task in tasks.items():
            if task.capability is None:
                continue
            if not self.tasks[name]:
                unserved.append(name)
            elif not self.chain(name, task.capability):
                raise ValueError(
                    f"models file: task {name} needs {task.capability.value}, and none of its "
                    f"profiles ({', '.join(self.tasks[name])}) has it"
                )
        return unserved


_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def _interpolate(text: str) -> str:
    def value(match: re.Match[str]) -> str:
        found = os.environ.get(match["name"])
        if found:
            return found
        if match["default"] is not None:
            return match["default"]
        raise ValueError(f"models file: ${{{match['name']}}} is not set and has no default")

    return _VARIABLE.sub(value, text)


def _expand(value: object) -> object:
    """Environment references in the parsed file's values (never in its comments)."""
    if isinstance(value, str):
        return _interpolate(value)
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    return value


def load_catalog(path: Path) -> Catalog:
    raw = _expand(yaml.safe_load(path.read_text()) or {})
    assert isinstance(raw, dict)
    profiles = {
        name: {"name": name, **(spec or {})} for name, spec in (raw.get("profiles") or {}).items()
    }
    return Catalog.model_validate({"profiles": profiles, "tasks": raw.get("tasks") or {}})
