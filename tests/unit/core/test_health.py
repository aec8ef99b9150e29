"""Both apps' probes, from core/health.py: live while serving, ready while the sidecar is."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import app.main
import placer.main
from core.health import get_sidecar
from tests.unit.fakes import MemorySidecar

APPS = {"api": app.main.app, "placer": placer.main.app}


@pytest.mark.parametrize("name", APPS)
@pytest.mark.parametrize(("ready", "code"), [(True, 200), (False, 503)])
def test_each_app_is_ready_while_its_sidecar_is(name: str, ready: bool, code: int) -> None:
    the_app: FastAPI = APPS[name]
    sidecar = MemorySidecar()
    sidecar.ready = ready
    the_app.dependency_overrides[get_sidecar] = lambda: sidecar
    try:
        client = TestClient(the_app)  # not started: the placer would open its gRPC port
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code == code
    finally:
        the_app.dependency_overrides.clear()
