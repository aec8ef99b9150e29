"""Settings: the apps' in core/config.py, the local stack's in devstack/config.py, the exchange
stand-in service's in exchange/config.py, the local cluster's in cluster/config.py, every variable
documented in .env.example."""

import re

import pytest
import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from cluster.config import ClusterSettings
from core.config import PROJECT_ROOT, Environment, Settings
from devstack.config import DevstackSettings
from exchange.config import ExchangeSettings


def names(settings_class: type[BaseSettings]) -> set[str]:
    return {field.alias or name for name, field in settings_class.model_fields.items()}


def test_every_setting_is_documented_in_env_example_and_nothing_else() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z_]+)=", text, re.MULTILINE))
    everything = names(Settings) | names(DevstackSettings) | names(ExchangeSettings)
    assert documented == everything | names(ClusterSettings)


def test_the_apps_and_the_local_stack_read_no_setting_in_common() -> None:
    assert names(Settings) & names(DevstackSettings) == set()
    assert names(ClusterSettings) & (names(Settings) | names(DevstackSettings)) == set()


def test_the_exchange_service_reads_no_setting_of_the_apps_or_the_local_stack() -> None:
    assert names(ExchangeSettings) & (names(Settings) | names(DevstackSettings)) == set()


@pytest.mark.parametrize(
    ("environment", "port"), [(Environment.DEVELOPMENT, 8000), (Environment.PRODUCTION, 80)]
)
def test_environment_chooses_the_api_port(environment: Environment, port: int) -> None:
    assert port == Settings(_env_file=None, ENVIRONMENT=environment).API_PORT


def test_api_port_can_be_overridden() -> None:
    assert Settings(_env_file=None, API_PORT=9000).API_PORT == 9000


def test_dead_letter_topic_must_differ_from_the_orders_topic() -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, DEAD_LETTER_TOPIC="orders")


@pytest.mark.parametrize("host", ["redis", "redis:", ":6379x"])
def test_the_streams_redis_is_host_and_port(host: str) -> None:
    with pytest.raises(ValidationError, match="STREAMS_REDIS_HOST"):
        Settings(_env_file=None, STREAMS_REDIS_HOST=host)


def test_the_placers_concurrency_is_the_same_wherever_it_is_set() -> None:
    """The default, .env.example, the chart, and the orders pub/sub component's deliveries in
    flight (6 per exchange call) are sized together (docs/performance.md#sizing-the-placer)."""
    default = Settings.model_fields["PLACER_CONCURRENCY"].default
    example = (PROJECT_ROOT / ".env.example").read_text()
    written = re.search(r"^PLACER_CONCURRENCY=(\d+)$", example, re.MULTILINE)
    assert written is not None and int(written[1]) == default
    chart = yaml.safe_load((PROJECT_ROOT / "charts/order-service/values.yaml").read_text())
    assert chart["placer"]["concurrency"] == default
    component = yaml.safe_load((PROJECT_ROOT / "components/common/pubsub.yaml").read_text())
    metadata = {item["name"]: item.get("value") for item in component["spec"]["metadata"]}
    assert int(metadata["concurrency"]) == 6 * default
