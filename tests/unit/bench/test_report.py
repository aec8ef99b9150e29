"""The benchmark's figures: ratios to the floor taken pairwise, and the table and plot."""

from typing import Any

from bench import report


def run(system: str, concurrency: int, rps: float) -> dict[str, Any]:
    figures = {"p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0, "non_2xx": 0}
    return {"system": system, "replicas": 1, "concurrency": concurrency, "rps": rps, **figures}


def results(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"date": "2026-11-25", "cores": 2, "runs": report.with_ratios(runs)}


def test_ratio_is_to_the_floor_at_the_same_concurrency() -> None:
    runs = report.with_ratios(
        [
            run("floor", 1, 100),
            run("floor", 64, 400),
            run("service", 1, 50),
            run("service", 64, 300),
        ]
    )
    ratios = {(r["system"], r["concurrency"]): r["ratio_to_floor"] for r in runs}
    assert ratios == {
        ("floor", 1): 1.0,
        ("floor", 64): 1.0,
        ("service", 1): 0.5,
        ("service", 64): 0.75,
    }


def test_run_without_a_floor_has_no_ratio() -> None:
    (only,) = report.with_ratios([run("naive", 16, 20)])
    assert "ratio_to_floor" not in only


def test_table_and_plot_show_every_run() -> None:
    figures = results([run("floor", 64, 400), run("service", 64, 300)])
    table = report.table(figures)
    assert "| service | 64 | 300 | 0.75 |" in table
    plot = report.svg(figures)
    assert plot.startswith("<svg") and plot.count("<rect") == 2 + len(report.SYSTEMS)
