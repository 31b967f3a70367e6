"""Settings every jobrelay app shares; each app subclasses ServiceSettings with its own prefix."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def port_field(env_prefix: str, default: int) -> Any:
    """A `port` field read from `{env_prefix}PORT`, else from APP_PORT.

    `dapr run` sets APP_PORT from the run file's appPort, so dapr.yaml is the one place a local
    port is chosen; the prefixed variable wins where both are set.
    """
    return Field(
        default=default,
        ge=1,
        le=65535,
        validation_alias=AliasChoices(f"{env_prefix}PORT", "APP_PORT"),
        description="Port to bind.",
    )


class ServiceSettings(BaseSettings):
    """Where an app listens and how much it logs. Each app's settings subclass it with their
    own prefix: `class IntakeSettings(ServiceSettings, env_prefix="JOBRELAY_INTAKE_")`."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    host: str = Field(default="127.0.0.1", description="Address to bind; loopback by default.")
    port: int
    log_level: str = Field(default="INFO", description="Python logging level.")


class StoreSettings(BaseSettings):
    """How long finished jobs stay; shared by every app that writes job records."""

    model_config = SettingsConfigDict(env_prefix="JOBRELAY_", extra="ignore", frozen=True)

    retention_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        description="Terminal records and their files expire this long after finishing.",
    )


class SidecarSettings(BaseSettings):
    """What Dapr itself hands every app (`dapr run`, the Kubernetes injector)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    app_api_token: SecretStr | None = Field(
        default=None,
        validation_alias="APP_API_TOKEN",
        description="The token the sidecar sends in `dapr-api-token` on its calls to the app; "
        "unset, sidecar routes are open (loopback development).",
    )


class MetricsSettings(BaseSettings):
    """Where an app serves its Prometheus metrics."""

    model_config = SettingsConfigDict(env_prefix="JOBRELAY_METRICS_", extra="ignore", frozen=True)

    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve /metrics on this port (on the app's host address) instead of the "
        "app's own port: set it wherever the app's port is public, so job counts, model names "
        "and token totals are not.",
    )
