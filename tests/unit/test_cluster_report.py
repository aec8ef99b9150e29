from typing import Any

from cluster import report, steps


def test_the_summary_is_made_from_the_results_files() -> None:
    # Regenerate with `python -m cluster report`: the docs link to it, nobody edits it by hand.
    assert report.SUMMARY.read_text() == report.markdown(report.load())


def _run(*stages: dict[str, Any]) -> dict[str, Any]:
    return {"command": "up", "finished_at": "2026-01-01T00:00:00+00:00", "total_seconds": 2400.0,
            "stages": list(stages), "cache_bytes": {"bin": 3 * report.MIB}}  # fmt: skip


def test_a_cold_up_lists_its_slow_stages_and_what_it_built() -> None:
    page = report.markdown({"cold": _run(
        {"stage": "go build kubernetes", "cached": False, "seconds": 937.0,
         "cold_build": {"seconds": 937.0, "packages": 2622}},
        {"stage": "engine", "seconds": 0.1},
    )})  # fmt: skip
    assert "in **40.0 min**" in page
    assert "| go build kubernetes | 937.0 | built (2622 packages) |" in page
    assert "| engine |" not in page
    assert "bin 3 MiB" in page


def test_a_warm_up_sums_the_first_builds_of_what_it_found() -> None:
    page = report.markdown({"latest": _run(
        {"stage": "go build etcd", "cached": True, "cold_build": {"seconds": 60.0}, "seconds": 0},
        {"stage": "store images", "cached": True,
         "cold_build": {"redis": {"seconds": 30.0}, "postgresql": {"seconds": 30.0}},
         "seconds": 0.1},
    )})  # fmt: skip
    assert "2 parts whose first builds took 2.0 min in all" in page


def test_the_suite_and_other_figures_are_shown() -> None:
    tests = [{"test": "test_cluster.py::test_a", "outcome": "passed", "seconds": 200.0},
             {"test": "test_cluster.py::test_b", "outcome": "passed", "seconds": 100}]  # fmt: skip
    suite = {"finished_at": "t", "seconds": 300.0, "cluster_was_up": False,
             "outcomes": {"passed": 2}, "tests": tests}  # fmt: skip
    page = report.markdown({"suite": suite, "orders": {"orders": 1000, "placed_once_each": True}})
    assert "2 passed, in **5.0 min**" in page
    assert "brought up and down by the suite" in page
    assert "| `test_cluster.py::test_b` | passed | 100.0 |" in page
    assert "## Orders" in page
    assert "- orders: 1000" in page


def test_only_a_run_that_built_every_part_is_cold() -> None:
    assert steps._cold([{"stage": "a", "cached": False}, {"stage": "b", "cached": False}])
    assert not steps._cold([{"stage": "a", "cached": False}, {"stage": "b", "cached": True}])
    assert not steps._cold([{"stage": "engine"}])


def test_a_new_cluster_from_cached_parts_is_warm() -> None:
    made: dict[str, object] = {"stage": steps.CLUSTER_CREATE}
    built_app: dict[str, object] = {"stage": steps.APP_IMAGES, "cached": False}
    assert steps._warm([{"stage": "a", "cached": True}, made, built_app])
    assert not steps._warm([{"stage": "a", "cached": False}, made])
    # An `up` that found the cluster running made none: not the warm figure.
    assert not steps._warm([{"stage": "a", "cached": True}, built_app])
    found_up = {**made, "already_up": True}
    assert not steps._warm([{"stage": "a", "cached": True}, found_up, built_app])
