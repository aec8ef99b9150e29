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


def test_outbox_subscription_is_delivered_in_batches() -> None:
    with TestClient(app) as client:
        subscriptions = client.get("/dapr/subscribe").json()
    outbox = next(s for s in subscriptions if s["topic"] == settings.OUTBOX_TOPIC)
    assert outbox["pubsubname"] == settings.OUTBOX_PUBSUB
    assert outbox["route"] == "/events/outbox"
    assert outbox["bulkSubscribe"]["enabled"] is True


def test_batch_is_answered_per_entry_in_the_sidecars_shape() -> None:
    batch = {
        "id": "batch-1",
        "topic": settings.OUTBOX_TOPIC,
        "entries": [
            {"entryId": "a", "event": {"id": "not-an-outbox-marker"}, "metadata": {}},
            {"entryId": "b", "event": "raw payload", "contentType": "text/plain"},
        ],
    }
    with TestClient(app) as client:
        response = client.post("/events/outbox", json=batch)
    assert response.status_code == 200
    assert response.json() == {
        "statuses": [{"entryId": "a", "status": "SUCCESS"}, {"entryId": "b", "status": "SUCCESS"}]
    }


def test_malformed_batch_is_refused_with_422() -> None:
    with TestClient(app) as client:
        response = client.post("/events/outbox", json={"entries": [{"event": {}}]})
    assert response.status_code == 422
