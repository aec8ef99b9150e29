"""The local stack's settings (`./run`, and the tests and the benchmark that start it), read
once from the environment and `.env`. The apps never read them: they get what they need from
the stack (ports, tokens) as their own settings in the environment."""

from enum import StrEnum
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from core.config import PROJECT_ROOT


class StateStoreKind(StrEnum):
    REDIS = "redis"
    POSTGRES = "postgres"


class DevstackSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=PROJECT_ROOT / ".env", env_ignore_empty=True, extra="ignore"
    )

    # Which state store the API's sidecar uses (components/<kind>/), and where the stores are.
    # Without REDIS_HOST / POSTGRES_CONNECTION_STRING, private servers are started on free
    # loopback ports with their data under DATA_DIR.
    STATE_STORE_KIND: StateStoreKind = StateStoreKind.REDIS
    REDIS_HOST: str | None = None
    REDIS_PASSWORD: str = ""
    POSTGRES_CONNECTION_STRING: str | None = None
    DATA_DIR: Path = PROJECT_ROOT / ".data"
    # The sidecars' HTTP ports (each app gets its own as DAPR_HTTP_PORT).
    API_DAPR_HTTP_PORT: int = 3500
    PLACER_DAPR_HTTP_PORT: int = 3501
    # The daprd to run; unset: daprd on PATH or in ~/.dapr/bin, else one built from daprd/.
    DAPRD_PATH: Path | None = None
    # May missing Debian packages (redis-server, postgresql) be installed with apt-get?
    ALLOW_PACKAGE_INSTALL: bool = True


devstack_settings = DevstackSettings()
