"""A node killed under the cluster (its engine stopped, the machine rebooted) is started again
by `up`, which waits for its API server instead of failing on the first refused connection;
the release then takes and places orders again.

Last in the cluster suite (it restarts every pod); alone:
`./run_tests.sh -m kind tests/e2e/test_cluster_restart.py`.
"""

import httpx
import pytest

from cluster import kind, release
from cluster.docker import Engine, docker
from tests.e2e.cluster_support import assert_accepted, port_forward, wait_release_settled
from tests.factories import limit_order_body
from tests.polling import wait_for

pytestmark = [pytest.mark.kind, pytest.mark.timeout(900)]

PLACED_WITHIN_SECONDS = 120


def test_up_restarts_a_killed_node_and_the_release_places_orders_again(cluster: Engine) -> None:
    docker(cluster, "kill", kind.NODE_CONTAINER)
    running = docker(cluster, "inspect", "--format", "{{.State.Running}}", kind.NODE_CONTAINER)
    assert running == "false\n"

    kind.up()

    wait_release_settled()
    body = limit_order_body(quantity=7)
    with (
        port_forward(f"svc/{release.RELEASE}-api", 80, "/health/ready") as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        answer = client.post("/orders", json=body)
        assert answer.status_code == 201, answer.text
        assert_accepted(answer.json(), body)
        order_id = answer.json()["id"]
        wait_for(lambda: client.get(f"/orders/{order_id}").json()["status"] == "placed",
                 what="the order placed after the restart",
                 timeout_seconds=PLACED_WITHIN_SECONDS)  # fmt: skip
