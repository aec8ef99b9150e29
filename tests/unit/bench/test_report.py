"""The benchmark's figures: ratios to the floor taken pairwise, and the report and plot."""

import json
from pathlib import Path
from typing import Any

import pytest

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


def test_report_and_plot_show_every_run() -> None:
    figures = results([run("floor", 64, 400), run("service", 64, 300)])
    table = report.markdown(figures)
    assert "| service | 64 | 300 | 0.75 |" in table
    plot = report.svg(figures)
    assert plot.startswith("<svg") and plot.count("<rect") == 2 + len(report.SYSTEMS)


def test_report_shows_the_scaling_ratios() -> None:
    figures = results([run("floor", 64, 400)])
    api = [{**run("service", 64, rps), "replicas": n} for n, rps in ((1, 400), (2, 500))]
    drains = [
        {"placers": n, "orders": 1500, "per_s": per_s, "bound_per_s": 18.0 * n,
         "fraction_of_bound": per_s / (18.0 * n)}
        for n, per_s in ((1, 17.0), (2, 34.0))
    ]  # fmt: skip
    figures["scaling"] = {
        "api_replicas": api, "api_ratio": 1.25, "placers": drains, "placer_ratio": 2.0
    }  # fmt: skip
    table = report.markdown(figures)
    assert "1: 400/s (p99 3 ms), 2: 500/s (p99 3 ms); ratio 1.25" in table
    assert "1: 17.0/s (94% of 18.0/s), 2: 34.0/s (94% of 36.0/s); ratio 2.0" in table


def test_report_shows_cpu_per_order_at_the_highest_concurrency() -> None:
    spent = {"api": 1.5, "daprd order-api": 0.8, "wrk": 0.3, "total": 2.3}
    figures = results(
        [
            {**run("service", 1, 50), "cpu_ms_per_order": {"api": 9.0, "total": 9.0}},
            {**run("service", 64, 300), "cpu_ms_per_order": spent},
        ]
    )
    table = report.markdown(figures)
    assert "CPU milliseconds per order at concurrency 64" in table
    assert "| system | total | api | daprd order-api | wrk |" in table
    assert "| service | 2.30 | 1.50 | 0.80 | 0.30 |" in table
    assert "9.00" not in table


def test_written_report_holds_the_figures_of_the_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    figures = results([run("floor", 64, 400), run("service", 64, 300)])
    figures["drain"] = {
        "orders": 1000, "seconds": 60.0, "per_s": 16.67, "bound_per_s": 18.0,
        "fraction_of_bound": 0.926,
    }  # fmt: skip
    report.write(figures)
    written = json.loads((tmp_path / "latest.json").read_text())
    page = (tmp_path / "latest.md").read_text()
    assert page == report.markdown(written)
    assert "| service | 64 | 300 | 0.75 |" in page
    assert "Placer drain: 1000 orders in 60.0 s = 16.67/s, 93% of the bound (18.0/s)" in page
    assert "](latest.json)" in page and "](latest.svg)" in page
    assert (tmp_path / "latest.svg").read_text() == report.svg(written)
