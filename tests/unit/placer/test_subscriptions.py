"""The placer's subscriptions as its sidecar reads them."""

from fastapi.testclient import TestClient

from core.config import settings
from placer.main import app


def test_orders_subscription_has_a_dead_letter_topic_with_its_own_subscription() -> None:
    with TestClient(app) as client:
        subscriptions = client.get("/dapr/subscribe").json()
    by_topic = {subscription["topic"]: subscription for subscription in subscriptions}
    orders = by_topic[settings.ORDERS_TOPIC]
    assert orders["pubsubname"] == settings.PUBSUB
    assert orders["deadLetterTopic"] == settings.DEAD_LETTER_TOPIC
    assert by_topic[settings.DEAD_LETTER_TOPIC]["route"] == "/events/dead-letters"


def test_poison_event_is_answered_with_drop() -> None:
    with TestClient(app) as client:
        response = client.post("/events/orders", json={"id": "x", "data": {"bogus": 1}})
    assert response.status_code == 200
    assert response.json() == {"status": "DROP"}
