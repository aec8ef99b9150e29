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
    # Open-loop latency (vegeta, a constant rate) of these systems at these fractions of their
    # closed-loop peak in the same run, OPEN_LOOP_SECONDS each (0: SECONDS).
    OPEN_LOOP_SYSTEMS: list[str] = ["floor", "service"]
    OPEN_LOOP_FRACTIONS: list[float] = [0.25, 0.5, 0.75]
    OPEN_LOOP_SECONDS: int = Field(default=0, ge=0)
    # Sustained end-to-end capacity: the highest constant rate that the service takes and
    # places with a flat backlog and accept→placed p99 within SUSTAINED_MAX_P99_MS, each rate
    # tried for SUSTAINED_SECONDS on a fresh service. SUSTAINED_RATES: only these rates; else a
    # search from SUSTAINED_START_RATE (0: 0.8 of the placer's drain rate in the same run),
    # doubling or halving, then halving the interval, within [SUSTAINED_MIN_RATE,
    # SUSTAINED_MAX_RATE], until the interval is within SUSTAINED_PRECISION (0.05: 5%) or
    # SUSTAINED_MAX_POINTS rates were tried.
    SUSTAINED: bool = True
    SUSTAINED_SECONDS: int = Field(default=120, ge=1)
    SUSTAINED_RATES: list[int] = []
    SUSTAINED_START_RATE: int = Field(default=0, ge=0)
    SUSTAINED_MIN_RATE: int = Field(default=5, ge=1)
    SUSTAINED_MAX_RATE: int = Field(default=1000, ge=1)
    SUSTAINED_PRECISION: float = Field(default=0.05, gt=0)
    SUSTAINED_MAX_POINTS: int = Field(default=8, ge=1)
    SUSTAINED_MAX_P99_MS: float = Field(default=3000, gt=0)
    # Where the floor and the naive peer find Redis (set by the benchmark for them).
    REDIS_URL: str = "redis://127.0.0.1:6379/0"


bench_settings = BenchSettings()
