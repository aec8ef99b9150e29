"""The benchmark's results: JSON for tools, a Markdown report for people, a small SVG bar chart.

`./bench/run` writes all three from the same figures; `python -m bench.report` writes the report
and the chart again from `results/latest.json` (after a change to this module)."""

import json
from datetime import date
from pathlib import Path
from typing import Any

from bench.cpu import LOAD_GENERATOR

RESULTS = Path(__file__).parent / "results"
SYSTEMS = ("floor", "service", "service-postgres", "naive")
COLOURS = {
    "floor": "#9e9e9e",
    "service": "#1565c0",
    "service-postgres": "#42a5f5",
    "naive": "#ef6c00",
}


def write(results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2) + "\n"
    for name in (f"{results['date']}.json", "latest.json"):
        (RESULTS / name).write_text(text)
    write_views(results)
    return RESULTS / "latest.json"


def write_views(results: dict[str, Any]) -> None:
    """The report and the chart of one run, beside its JSON."""
    (RESULTS / "latest.md").write_text(markdown(results))
    (RESULTS / "latest.svg").write_text(svg(results))


def with_ratios(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run's orders/s over the floor's at the same concurrency, in the same run."""
    floor = {r["concurrency"]: r["rps"] for r in runs if r["system"] == "floor"}
    return [
        {**r, "ratio_to_floor": round(r["rps"] / floor[r["concurrency"]], 2)}
        if floor.get(r["concurrency"]) else r
        for r in runs
    ]  # fmt: skip


def markdown(results: dict[str, Any]) -> str:
    """The whole run as a Markdown page: the intake table, CPU per order, placement, scaling."""
    lines = [
        "# Benchmark results",
        "",
        f"POST /orders on {results['cores']} cores, {results['date']}"
        + _settings_note(results)
        + ". Written by `./bench/run` from the figures in [latest.json](latest.json); "
        "the method is in [the benchmark's README](../README.md).",
        "",
        "![Orders per second by system and concurrency](latest.svg)",
        "",
        "## Intake",
        "",
        *runs_table(results["runs"]),
        *cpu_table(results["runs"]),
        *placement_lines(results),
    ]
    if scaling := results.get("scaling"):
        lines.extend(["", "## Horizontal scaling", "", *(f"- {s}" for s in scaling_lines(scaling))])
    return "\n".join(lines) + "\n"


def _settings_note(results: dict[str, Any]) -> str:
    parts = []
    if workers := results.get("api_workers"):
        parts.append(f"{workers} API workers")
    if seconds := results.get("seconds_per_point"):
        parts.append(f"{seconds} s per point")
    return f" ({', '.join(parts)})" if parts else ""


def runs_table(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| system | concurrency | orders/s | vs floor | p50 ms | p90 ms | p99 ms | non-2xx |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        lines.append(
            f"| {r['system']} | {r['concurrency']} | {r['rps']} | {r.get('ratio_to_floor', '')} "
            f"| {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['non_2xx']} |"
        )
    return lines


def cpu_table(runs: list[dict[str, Any]]) -> list[str]:
    """At the highest concurrency: each system's CPU milliseconds per order, by process role."""
    top = max(r["concurrency"] for r in runs)
    spent = [(r["system"], r["cpu_ms_per_order"]) for r in runs
             if r["concurrency"] == top and r.get("cpu_ms_per_order")]  # fmt: skip
    if not spent:
        return []
    # The load generator last: it is not part of the system under test, nor of the total.
    roles = sorted({role for _, by_role in spent for role in by_role} - {"total", LOAD_GENERATOR})
    roles.append(LOAD_GENERATOR)
    lines = [
        "",
        f"CPU milliseconds per order at concurrency {top}, by process (the total leaves out "
        f"the load generator, {LOAD_GENERATOR}):",
        "",
        "| system | total | " + " | ".join(roles) + " |",
        "| --- | --- |" + " --- |" * len(roles),
    ]
    for system, by_role in spent:
        cells = [f"{by_role[role]:.2f}" if role in by_role else "" for role in roles]
        lines.append(f"| {system} | {by_role['total']:.2f} | " + " | ".join(cells) + " |")
    return lines


def placement_lines(results: dict[str, Any]) -> list[str]:
    drain, latency = results.get("drain"), results.get("accept_to_placed_ms")
    lines = []
    if drain:
        lines.append(
            f"- Placer drain: {drain['orders']} orders in {drain['seconds']} s = "
            f"{drain['per_s']}/s, {drain['fraction_of_bound']:.0%} of the bound "
            f"({drain['bound_per_s']}/s)"
        )
    if latency:
        lines.append(f"- Accept→placed: p50 {latency['p50']} ms, p99 {latency['p99']} ms")
    return ["", "## Placement", "", *lines] if lines else []


def scaling_lines(scaling: dict[str, Any]) -> list[str]:
    apis, placers = scaling["api_replicas"], scaling["placers"]
    api_figures = ", ".join(
        f"{r['replicas']}: {r['rps']}/s (p99 {r['p99_ms']:.0f} ms)" for r in apis
    )
    placer_figures = ", ".join(
        f"{r['placers']}: {r['per_s']}/s ({r['fraction_of_bound']:.0%} of {r['bound_per_s']}/s)"
        for r in placers
    )
    return [
        f"API replicas at concurrency {apis[0]['concurrency']}: {api_figures}; "
        f"ratio {scaling['api_ratio']}",
        f"Placers draining {placers[0]['orders']} orders: {placer_figures}; "
        f"ratio {scaling['placer_ratio']}",
    ]


def svg(results: dict[str, Any]) -> str:
    """Orders/s per system, grouped by concurrency."""
    runs = results["runs"]
    concurrencies = sorted({r["concurrency"] for r in runs})
    top = max(r["rps"] for r in runs) or 1
    bar, gap, height, left = 18, 24, 160, 40
    width = left + len(concurrencies) * (len(SYSTEMS) * bar + gap) + 150
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 50}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="14">POST /orders, orders/s ({results["cores"]} cores, '
        f"{results['date']})</text>",
    ]
    for group, concurrency in enumerate(concurrencies):
        x0 = left + group * (len(SYSTEMS) * bar + gap)
        for i, system in enumerate(SYSTEMS):
            run = next(
                (r for r in runs if r["system"] == system and r["concurrency"] == concurrency), None
            )
            if run is None:
                continue
            h = run["rps"] / top * (height - 30)
            x, y = x0 + i * bar, height - h + 20
            parts.append(
                f'<rect x="{x}" y="{y:.1f}" width="{bar - 2}" height="{h:.1f}" '
                f'fill="{COLOURS[system]}"><title>{system}: {run["rps"]}/s</title></rect>'
            )
        parts.append(f'<text x="{x0}" y="{height + 36}">concurrency {concurrency}</text>')
    for i, system in enumerate(SYSTEMS):
        y = 30 + i * 16
        x = width - 140
        parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{COLOURS[system]}"/>')
        parts.append(f'<text x="{x + 14}" y="{y}">{system}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def today() -> str:
    return date.today().isoformat()


if __name__ == "__main__":
    write_views(json.loads((RESULTS / "latest.json").read_text()))
