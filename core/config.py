"""The settings of both apps (the API and the placer), read once from the environment (and
`.env`). The local stack that `./run` starts has its own: devstack/config.py."""

import re
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, computed_field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.signing import OrderSigner

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    JSON = "json"  # one JSON object per line, for log collectors
    TEXT = "text"  # plain lines, for a terminal


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=PROJECT_ROOT / ".env", env_ignore_empty=True, extra="ignore"
    )

    ENVIRONMENT: Environment = Environment.DEVELOPMENT
    LOG_LEVEL: str = "INFO"
    LOG_FORMAT: LogFormat = LogFormat.JSON

    # Prometheus metrics: each app serves them on its own port, on METRICS_HOST.
    METRICS_HOST: str = "127.0.0.1"
    API_METRICS_PORT: int = 9464
    PLACER_METRICS_PORT: int = 9465
    # Traces go over OTLP/HTTP to this collector (e.g. http://otel-collector:4318) when set;
    # without it trace ids are still made, passed on and logged, and nothing is exported.
    # Sampling follows the standard OTEL_TRACES_SAMPLER(_ARG) variables (default: every trace
    # whose parent is sampled, and every new one).
    OTEL_EXPORTER_OTLP_ENDPOINT: str | None = None

    # The order API. Development serves on 8000, production on 80, unless API_PORT says otherwise.
    API_HOST: str = "127.0.0.1"
    API_PORT_OVERRIDE: Annotated[int | None, Field(alias="API_PORT")] = None
    API_WORKERS: Annotated[int, Field(ge=1)] = 2
    # How long the API keeps an idle keep-alive connection open: longer than the idle timeout of
    # whatever reuses connections to it (load balancers, proxies, client pools: 60 to 90 s by
    # default), so that they close first. When the API closes first, a request sent on the
    # closing connection is reset, as under load with uvicorn's 5 s.
    API_KEEP_ALIVE_SECONDS: Annotated[int, Field(gt=0)] = 120

    # Upper bounds of the order contract, so absurd numbers are a 422 and not a failure later on.
    # The price bound is written into the OpenAPI document's pattern for price strings, which
    # is built for a bound of at least 1 in whole cents.
    MAX_QUANTITY: Annotated[int, Field(gt=0)] = 1_000_000_000
    MAX_LIMIT_PRICE: Annotated[Decimal, Field(ge=1, decimal_places=2)] = Decimal(1_000_000_000)
    MAX_BODY_BYTES: Annotated[int, Field(gt=0)] = 16 * 1024

    # Client API keys, comma-separated: when set, every /orders call must send one of them in
    # the X-API-Key header. Empty (the default): no client authentication.
    API_KEYS: SecretStr = SecretStr("")

    # How long an Idempotency-Key is remembered, and its longest accepted length.
    IDEMPOTENCY_RETENTION_SECONDS: Annotated[int, Field(gt=0)] = 24 * 3600
    MAX_IDEMPOTENCY_KEY_LENGTH: Annotated[int, Field(gt=0)] = 255

    # How long POST /orders may wait for the sidecar before it answers 500.
    ORDER_TIMEOUT_SECONDS: Annotated[float, Field(gt=0)] = 3.0
    READINESS_TIMEOUT_SECONDS: Annotated[float, Field(gt=0)] = 1.0

    # The Dapr sidecar of this process (daprd sets DAPR_HTTP_PORT for its app).
    DAPR_HOST: str = "127.0.0.1"
    DAPR_HTTP_PORT: int = 3500
    DAPR_API_TOKEN: str | None = None
    # The token the sidecar sends with every call to its app (the placer refuses calls without).
    APP_API_TOKEN: str | None = None
    # A secret both apps share: the API signs each order it publishes with it, and the placer
    # then claims a signed order without reading it from the store first (core/signing.py).
    # Empty: no signatures, and the placer reads every order before it claims it.
    ORDER_SIGNING_KEY: SecretStr = SecretStr("")

    # Names of the Dapr components and topics; they must match components/ and the chart.
    STATE_STORE: str = "orderstore"  # the API's, with the outbox
    PLACER_STATE_STORE: str = "orderstore-placer"  # the same keys, without the outbox
    PUBSUB: str = "orderpubsub"
    ORDERS_TOPIC: str = "orders"
    DEAD_LETTER_TOPIC: str = "orders-deadletter"

    # The runtime's transactional outbox: its internal topic on OUTBOX_PUBSUB (named
    # {namespace}{API app id}{ORDERS_TOPIC}outbox), and a state store on the runtime's own keys
    # (no key prefix), with which the placer releases messages whose commit failed.
    OUTBOX_PUBSUB: str = "outboxpubsub"
    OUTBOX_TOPIC: str = "defaultorder-apiordersoutbox"
    OUTBOX_MARKER_STORE: str = "outbox-markers"

    # The placer: its HTTP port (health), and the gRPC port its sidecar delivers to.
    PLACER_HOST: str = "127.0.0.1"
    PLACER_PORT: int = 8001
    PLACER_GRPC_PORT: int = 8002
    # Exchange calls in flight at once per placer, each waiting out the exchange's latency:
    # sized for a 0.5 s exchange (docs/performance.md#sizing-the-placer says how to size it
    # for another latency or a rate limit). components/common/pubsub.yaml delivers 6 times as many.
    PLACER_CONCURRENCY: Annotated[int, Field(ge=1)] = 250
    # A failed exchange call is repeated at once this many times before the delivery is
    # answered RETRY (the runtime's backoff starts at 0.25 to 0.75 s): the exchange fails one
    # call in ten, so three calls leave one order in a thousand to the runtime's retries.
    PLACER_RETRIES_AT_ONCE: Annotated[int, Field(ge=0)] = 2

    # The stock exchange stand-in (placer/stock_exchange.py): in the placer's process, or in
    # the shared stand-in service (`python -m exchange`), which reads these four itself.
    EXCHANGE_LATENCY_SECONDS: Annotated[float, Field(ge=0)] = 0.5
    EXCHANGE_FAILURE_RATE: Annotated[float, Field(ge=0, le=1)] = 0.1
    EXCHANGE_LEDGER_PATH: Path = PROJECT_ROOT / ".data" / "exchange-ledger.sqlite3"
    # A JSON file, read on every call when it exists, that overrides the two figures above
    # ({"failure_rate": 1.0, "latency_seconds": 30}): how fault tests break the exchange.
    EXCHANGE_CONTROL_PATH: Path | None = None
    # The shared stand-in service (e.g. http://exchange:8080) that the placer calls instead of
    # the in-process one when set, each call within EXCHANGE_TIMEOUT_SECONDS: a call that times
    # out is a failed one, retried like any other (its client order id makes that harmless).
    EXCHANGE_URL: str | None = None
    EXCHANGE_TIMEOUT_SECONDS: Annotated[float, Field(gt=0)] = 3.0

    # The placer trims the Redis streams behind the topics (placer/stream_trim.py) on the Redis
    # at STREAMS_REDIS_HOST (host:port), with the credentials its sidecar uses; without it, or
    # with an interval of 0, it does not. Every STREAM_TRIM_INTERVAL_SECONDS, each Redis call
    # within STREAM_TRIM_TIMEOUT_SECONDS: the streams then keep about an interval's worth of
    # entries beyond those some consumer group still needs.
    STREAMS_REDIS_HOST: str | None = None
    STREAMS_REDIS_USERNAME: str | None = None
    STREAMS_REDIS_PASSWORD: SecretStr = SecretStr("")
    # TLS, the server's certificate checked against the system roots (a managed Redis).
    STREAMS_REDIS_TLS: bool = False
    STREAM_TRIM_INTERVAL_SECONDS: Annotated[float, Field(ge=0)] = 10.0
    STREAM_TRIM_TIMEOUT_SECONDS: Annotated[float, Field(gt=0)] = 5.0
    # On the same Redis, every STRANDED_CHECK_INTERVAL_SECONDS (0: never), the placer hands back
    # for redelivery the orders a stopping sidecar read and never delivered: pending that many
    # STRANDED_AFTER_SECONDS and claimed by no placer (placer/handback.py). Without it they wait
    # out the pub/sub's processingTimeout (180 s).
    STRANDED_CHECK_INTERVAL_SECONDS: Annotated[float, Field(ge=0)] = 10.0
    STRANDED_AFTER_SECONDS: Annotated[float, Field(gt=0)] = 30.0

    # A down exchange (placer/holding.py). After PLACER_BREAKER_FAILURES failed exchange calls in
    # a row (failed, timed out or unreachable; an order the exchange refused does not count) the
    # placer holds its deliveries instead of answering RETRY, and tries one of them on the
    # exchange every PLACER_BREAKER_PROBE_SECONDS until it is back. An order not placed within
    # PLACER_MAX_ORDER_AGE_SECONDS of its 201 is never sent: it is dead-lettered with that reason.
    # The resiliency policy's placementAttempt must exceed the maximum age, or a hold ends at the
    # delivery's deadline with a RETRY (components/common/resiliency.yaml).
    PLACER_BREAKER_FAILURES: Annotated[int, Field(ge=1)] = 12
    PLACER_BREAKER_PROBE_SECONDS: Annotated[float, Field(gt=0)] = 2.0
    PLACER_MAX_ORDER_AGE_SECONDS: Annotated[float, Field(gt=0)] = 900.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def API_PORT(self) -> int:
        if self.API_PORT_OVERRIDE is not None:
            return self.API_PORT_OVERRIDE
        return 80 if self.ENVIRONMENT is Environment.PRODUCTION else 8000

    @computed_field  # type: ignore[prop-decorator]
    @property
    def DAPR_HTTP_ENDPOINT(self) -> str:
        return f"http://{self.DAPR_HOST}:{self.DAPR_HTTP_PORT}"

    def order_signer(self) -> OrderSigner | None:
        key = self.ORDER_SIGNING_KEY.get_secret_value()
        return OrderSigner(key) if key else None

    def api_keys(self) -> frozenset[str]:
        """The accepted client API keys; empty when client authentication is off."""
        keys = self.API_KEYS.get_secret_value().split(",")
        return frozenset(key.strip() for key in keys if key.strip())

    @model_validator(mode="after")
    def _check_names(self) -> "Settings":
        if self.ORDERS_TOPIC == self.DEAD_LETTER_TOPIC:
            raise ValueError("DEAD_LETTER_TOPIC must differ from ORDERS_TOPIC")
        host = self.STREAMS_REDIS_HOST
        if host is not None and not re.fullmatch(r".+:\d+", host):
            raise ValueError(f"STREAMS_REDIS_HOST must be host:port, not {host!r}")
        return self


settings = Settings()
