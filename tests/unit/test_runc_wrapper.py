"""The runc front end that drops capabilities the host's bounding set lacks."""

import json
from pathlib import Path

from cluster import runc_wrapper


def test_finds_the_spec_of_create_after_global_options() -> None:
    arguments = ["--root", "/run/runc", "--log-format", "json", "create", "--bundle", "/b", "id"]
    assert runc_wrapper.spec_file(arguments) == Path("/b/config.json")


def test_finds_the_process_file_of_exec() -> None:
    arguments = ["--root", "/run/runc", "exec", "--process", "/tmp/p.json", "--detach", "id"]
    assert runc_wrapper.spec_file(arguments) == Path("/tmp/p.json")


def test_other_commands_are_left_alone() -> None:
    assert runc_wrapper.spec_file(["--root", "/run/runc", "delete", "id"]) is None


def test_drops_the_missing_capabilities_from_every_set(tmp_path: Path) -> None:
    every = ["CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_NET_ADMIN"]
    sets = {kind: list(every) for kind in ("bounding", "effective", "permitted")}
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"process": {"capabilities": sets, "args": ["sh"]}}))

    runc_wrapper.drop_capabilities(config, {"CAP_SYS_RESOURCE"})

    process = json.loads(config.read_text())["process"]
    assert process["args"] == ["sh"]
    for names in process["capabilities"].values():
        assert names == ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]


def test_a_process_file_is_edited_at_its_top_level(tmp_path: Path) -> None:
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"capabilities": {"bounding": ["CAP_SYS_RESOURCE"]}}))

    runc_wrapper.drop_capabilities(process, {"CAP_SYS_RESOURCE"})

    assert json.loads(process.read_text())["capabilities"]["bounding"] == []
