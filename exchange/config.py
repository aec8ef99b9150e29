"""The stand-in service's own settings, read once from the environment (and `.env`). How the
stand-in behaves (EXCHANGE_LATENCY_SECONDS, EXCHANGE_FAILURE_RATE, EXCHANGE_LEDGER_PATH,
EXCHANGE_CONTROL_PATH) is read by the stand-in's code, placer/stock_exchange.py, in the
settings of core/config.py: the same variables whether it runs in a placer or here."""

from pydantic_settings import BaseSettings, SettingsConfigDict

from core.config import PROJECT_ROOT


class ExchangeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=PROJECT_ROOT / ".env", env_ignore_empty=True, extra="ignore"
    )

    # Where the service listens (0.0.0.0 in a container, for the placers' calls).
    EXCHANGE_HOST: str = "127.0.0.1"
    EXCHANGE_PORT: int = 8003


exchange_settings = ExchangeSettings()
