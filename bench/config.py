"""The benchmark's settings, from the environment (BENCH_*)."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BenchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_")

    # Each measured point: a warm-up (not measured), then SECONDS of load.
    SECONDS: int = Field(default=20, ge=1)
    WARMUP_SECONDS: int = Field(default=5, ge=0)
    CONCURRENCIES: list[int] = [1, 16, 64]
    # Orders for the placer's drain, and for accept→placed at a rate it keeps up with.
    BACKLOG: int = Field(default=10_000, ge=1)
    LATENCY_ORDERS: int = Field(default=200, ge=1)
    LATENCY_RATE_PER_SECOND: float = Field(default=5.0, gt=0)
    # Horizontal scaling (1 and 2 API replicas, 1 and 2 placers), and its placers' backlog.
    SCALING: bool = True
    SCALING_BACKLOG: int = Field(default=1500, ge=1)
    # Where the floor and the naive peer find Redis (set by the benchmark for them).
    REDIS_URL: str = "redis://127.0.0.1:6379/0"


bench_settings = BenchSettings()
