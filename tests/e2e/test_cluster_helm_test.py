"""`helm test` on the local cluster: the chart's test hook, run by the project's helm with the
kubeconfig `up` wrote, places one limit order through the API's Service and sees it placed; the
order is then read back through the API and counted once by the shared exchange stand-in.

With the cluster suite; alone: `./run_tests.sh -m kind tests/e2e/test_cluster_helm_test.py`.
"""

import json
import re
import subprocess

import httpx
import pytest

from cluster import dapr, release
from devstack import binaries
from tests.e2e.cluster_support import kubectl, wait_release_settled

pytestmark = [pytest.mark.kind, pytest.mark.timeout(900)]

TEST_POD = f"{release.RELEASE}-test-place-order"
HELM_TEST_TIMEOUT = "300s"  # helm's default; the hook gives up after 240 s (helmTest.*)


def test_helm_test_places_one_order(api_url: str, exchange_url: str) -> None:
    wait_release_settled()  # whatever the tests before it did to the release
    command = [str(binaries.helm()), "test", release.RELEASE, "-n", release.NAMESPACE,
               "--timeout", HELM_TEST_TIMEOUT, "--logs",
               "--kubeconfig", str(dapr.KUBECONFIG)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=420, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    suite = dict(re.findall(r"^(TEST SUITE|Phase):\s+(\S+)$", result.stdout, re.MULTILINE))
    assert suite == {"TEST SUITE": TEST_POD, "Phase": "Succeeded"}, result.stdout
    # The pod's log (--logs): the order it placed.
    [order_id] = re.findall(r"^order (\S+) placed$", result.stdout, re.MULTILINE)
    order = httpx.get(f"{api_url}/orders/{order_id}", timeout=10).json()
    assert (order["type"], order["quantity"], order["status"]) == ("limit", 1, "placed")
    placements = httpx.get(f"{exchange_url}/placements", timeout=10).json()
    assert placements["accepted"].get(order_id) == 1
    # It ran in the namespace that enforces `restricted`, without a sidecar, and is kept for
    # the logs until the next run.
    pod = json.loads(kubectl("-n", release.NAMESPACE, "get", "pod", TEST_POD, "-o", "json"))
    assert pod["status"]["phase"] == "Succeeded"
    assert [container["name"] for container in pod["spec"]["containers"]] == ["place-order"]
