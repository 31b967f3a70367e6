from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from jobrelay.settings import ServiceSettings, port_field

_PREFIX = "JOBRELAY_INTAKE_"


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", frozen=True)

    port: int = port_field(_PREFIX, 8000)
    status_base_url: str = Field(
        default="http://127.0.0.1:8001",
        description="Public base URL of the status app; status_url and Location point there.",
    )


@lru_cache
def get_settings() -> IntakeSettings:
    return IntakeSettings()
