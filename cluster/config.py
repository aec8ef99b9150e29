"""The local cluster's settings (`./run cluster`, the cluster tests), read once from the
environment and `.env`."""

from enum import StrEnum

from pydantic_settings import BaseSettings, SettingsConfigDict

from core.config import PROJECT_ROOT


class BuildOffline(StrEnum):
    AUTO = "auto"  # build here only what cannot be pulled (kind's node image, Dapr's images)
    ALWAYS = "always"
    NEVER = "never"


class ClusterSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=PROJECT_ROOT / ".env", env_ignore_empty=True, extra="ignore"
    )

    # The kind cluster's name (its kubectl context is kind-<name>).
    CLUSTER_NAME: str = "order-service"
    # Build the node image and the images on it from source here, or pull kind's published one.
    CLUSTER_BUILD_OFFLINE: BuildOffline = BuildOffline.AUTO
    # How long `up` waits for the published node image to pull before building instead.
    CLUSTER_PULL_TIMEOUT_SECONDS: float = 20.0
    # Where `./run cluster` forwards the API's Service to (http://127.0.0.1:<port>/docs).
    CLUSTER_API_PORT: int = 8000


cluster_settings = ClusterSettings()
