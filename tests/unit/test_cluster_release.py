"""The chart's install by `./run cluster`, and the command line that chooses the port-forward."""

import json
import sys
import time

import pytest

from cluster import __main__ as cli
from cluster import release
from cluster.app_images import AppImages
from cluster.store_images import StoreImages


def test_the_install_uses_the_development_profile_and_the_images_built_here() -> None:
    values = {**AppImages("abc123").helm_values(),
              **StoreImages({"redis": "r1", "postgresql": "p1"}).helm_values()}  # fmt: skip
    args = release.helm_args(values)
    assert args[:4] == ["upgrade", "--install", "order-service", str(release.CHART)]
    assert args[args.index("--namespace") + 1] == "orders"
    assert args[args.index("-f") + 1] == str(release.DEV_VALUES)
    assert "--wait" in args
    settings = [args[i + 1] for i, arg in enumerate(args) if arg == "--set"]
    assert settings == [
        "image.repository=order-service",
        "image.tag=abc123",
        "devStores.redis.image.repository=order-service/dev-redis",
        "devStores.redis.image.tag=r1",
        "devStores.postgresql.image.repository=order-service/dev-postgresql",
        "devStores.postgresql.image.tag=p1",
    ]


@pytest.mark.parametrize(
    ("argv", "forward"),
    [([], True), (["up"], True), (["up", "--no-forward"], False), (["--no-forward"], False)],
)
def test_up_forwards_unless_told_not_to(
    argv: list[str], forward: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(sys, "argv", ["cluster", *argv])
    monkeypatch.setattr(cli, "up", calls.append)
    assert cli.main() == 0
    assert calls == [forward]


def test_an_unknown_command_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["cluster", "upp"])
    with pytest.raises(SystemExit, match="usage"):
        cli.main()


def _pod(name: str, *, ready: bool, going: bool = False) -> dict[str, object]:
    metadata: dict[str, object] = {"name": name}
    if going:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = {"conditions": [{"type": "Ready", "status": str(ready)}]}
    return {"metadata": metadata, "spec": {"containers": []}, "status": status}


def test_pods_of_the_previous_rollout_still_going_are_not_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A pod deleted while not Ready would have `kubectl wait` wait out its whole timeout.
    listings = [
        [_pod("old", ready=False, going=True), _pod("new", ready=False)],
        [_pod("old", ready=False, going=True), _pod("new", ready=True)],
    ]
    calls: list[list[str]] = []

    def run_tool(command: list[str]) -> str:
        calls.append(command)
        return json.dumps({"items": listings[min(len(calls), len(listings)) - 1]})

    monkeypatch.setattr(release, "run_tool", run_tool)
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    pods = release._ready_pods(["kubectl", "-n", "orders"])
    assert [pod["metadata"]["name"] for pod in pods] == ["new"]
    assert len(calls) == 2
    assert all("wait" not in command for command in calls)
