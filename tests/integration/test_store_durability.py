"""The stores `./run`, the tests and the benchmark start answer a write only once it is on disk,
so that an order answered 201 survives a crash of the machine (docs/design.md, Durability)."""

from pathlib import Path

import psycopg
import redis

from devstack.processes import ProcessGroup, free_port
from devstack.stores import start_postgres, start_redis


def test_redis_syncs_every_write_to_its_append_only_file(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path) as group:
        server = start_redis(group, tmp_path / "redis", free_port())
        with redis.Redis(port=server.port, socket_timeout=5, decode_responses=True) as client:
            config = client.config_get("append*")
            persistence = client.info("persistence")
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "always"
    assert persistence["aof_enabled"] == 1


def test_postgresql_flushes_each_commit_before_it_answers(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path) as group:
        server = start_postgres(group, tmp_path / "postgres", free_port())
        with psycopg.connect(server.connection_string) as connection:
            rows = connection.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                (["fsync", "synchronous_commit"],),
            ).fetchall()
    settings: dict[str, str] = dict(rows)
    assert settings["fsync"] == "on"
    assert settings["synchronous_commit"] == "on"
