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


def sustained_point(rate: int, ok: bool) -> dict[str, Any]:
    return {
        "rate_per_s": rate, "seconds": 120.0, "sent": rate * 120, "accepted_per_s": float(rate),
        "placed_per_s": float(rate), "dead_lettered": 0, "backlog_start": 30,
        "backlog_end": 31 if ok else 900, "accept_to_placed_ms": {"p50": 1500, "p99": 2900},
        "not_placed_at_end": 0,
        "cpu_ms_per_placed_order": {"api": 1.5, "placer": 0.5, "vegeta": 0.2, "total": 2.0},
        "cpu_bound_per_s": 1000.0, "fraction_of_cpu_bound": rate / 1000, "sustained": ok,
        "flat": ok, "reasons": [] if ok else ["backlog: 900 at the end, over 520"],
        "backlog_every_s": 4, "backlog": [0, 30, 31] if ok else [0, 300, 900],
    }  # fmt: skip


def with_sustained(figures: dict[str, Any]) -> dict[str, Any]:
    tried = [sustained_point(200, True), sustained_point(400, False)]
    headline = {k: v for k, v in tried[0].items() if k not in ("backlog", "backlog_every_s")}
    figures["sustained"] = {
        **headline, "capacity_per_s": 200, "highest_flat_rate_per_s": 200, "tried": tried,
        "criteria": {"max_p99_ms": 3000},
    }  # fmt: skip
    return figures


def test_report_shows_the_sustained_capacity_and_every_rate_tried() -> None:
    spent = {"api": 1.6, "placer": 0.2, "wrk": 0.04, "total": 1.8}
    figures = with_sustained(results([{**run("service", 64, 600), "cpu_ms_per_order": spent}]))
    page = report.markdown(figures)
    assert "**200 orders/s** taken and placed for 120.0 s" in page
    assert "20% of the CPU bound, 1000.0 orders/s" in page
    assert "| 200 | 200.0 | 200.0 | 30 → 31 | 1500 | 2900 | 0 | 2.00 | 1000.0 | sustained |" in page
    assert "| 400 |" in page and "not sustained: backlog: 900 at the end, over 520" in page
    # CPU per placed order beside the intake's per accepted order; no load generator.
    assert "| service | total | api | placer |" in page
    assert "| per accepted order at concurrency 64 (intake) | 1.80 | 1.60 | 0.20 |" in page
    assert "| per placed order at 200/s (sustained) | 2.00 | 1.50 | 0.50 |" in page
    plot = report.sustained_svg(figures)
    assert plot.startswith("<svg") and plot.count("<polyline") == 2
    assert "400/s (not sustained)" in plot


def test_report_says_when_no_rate_was_sustained() -> None:
    figures = with_sustained(results([run("service", 64, 600)]))
    figures["sustained"].update(capacity_per_s=0, highest_flat_rate_per_s=15)
    page = report.markdown(figures)
    assert "No rate tried was sustained" in page
    assert "the highest rate with a flat backlog: 15/s" in page


def test_report_shows_the_open_loop_points_with_what_each_rate_is_a_fraction_of() -> None:
    figures = results([run("floor", 64, 400)])
    figures["open_loop"] = [
        {"system": "floor", "rate_per_s": 200, "fraction_of_capacity": 0.5, "p50_ms": 1.234,
         "p99_ms": 5.0, "p999_ms": 12.5, "errors": 0, "capacity_per_s": 400.0,
         "capacity_basis": "closed-loop peak"},
        {"system": "service", "rate_per_s": 114, "fraction_of_capacity": 0.5, "p50_ms": 3.14,
         "p99_ms": 7.86, "p999_ms": 15.85, "errors": 0, "capacity_per_s": 229,
         "capacity_basis": "sustained capacity"},
    ]  # fmt: skip
    page = report.markdown(figures)
    assert "## Latency at a fixed rate" in page
    assert "| floor | 200 | 50% of closed-loop peak (400/s) | 1.2 | 5.0 | 12.5 | 0 |" in page
    assert "| service | 114 | 50% of sustained capacity (229/s) | 3.1 | 7.9 | 15.8 | 0 |" in page


def test_written_views_include_the_backlog_chart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    report.write(with_sustained(results([run("service", 64, 600)])))
    page = (tmp_path / "latest.md").read_text()
    assert f"]({report.SUSTAINED_CHART})" in page
    written = json.loads((tmp_path / "latest.json").read_text())
    assert (tmp_path / report.SUSTAINED_CHART).read_text() == report.sustained_svg(written)
