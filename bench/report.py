"""The benchmark's results: JSON for tools, a table for people, a small SVG bar chart."""

import json
from datetime import date
from pathlib import Path
from typing import Any

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
    (RESULTS / "latest.svg").write_text(svg(results))
    return RESULTS / "latest.json"


def with_ratios(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run's orders/s over the floor's at the same concurrency, in the same run."""
    floor = {r["concurrency"]: r["rps"] for r in runs if r["system"] == "floor"}
    return [
        {**r, "ratio_to_floor": round(r["rps"] / floor[r["concurrency"]], 2)}
        if floor.get(r["concurrency"]) else r
        for r in runs
    ]  # fmt: skip


def table(results: dict[str, Any]) -> str:
    lines = [
        f"POST /orders on {results['cores']} cores, {results['date']}",
        "| system | concurrency | orders/s | vs floor | p50 ms | p90 ms | p99 ms | non-2xx |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['system']} | {r['concurrency']} | {r['rps']} | {r.get('ratio_to_floor', '')} "
            f"| {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['non_2xx']} |"
        )
    lines.extend(cpu_lines(results["runs"]))
    drain, latency = results.get("drain"), results.get("accept_to_placed_ms")
    if drain:
        lines.append(
            f"\nPlacer drain: {drain['orders']} orders in {drain['seconds']} s = "
            f"{drain['per_s']}/s, {drain['fraction_of_bound']:.0%} of the bound "
            f"({drain['bound_per_s']}/s)"
        )
    if latency:
        lines.append(f"Accept→placed: p50 {latency['p50']} ms, p99 {latency['p99']} ms")
    if scaling := results.get("scaling"):
        lines.extend(scaling_lines(scaling))
    return "\n".join(lines)


def cpu_lines(runs: list[dict[str, Any]]) -> list[str]:
    """At the highest concurrency: each system's CPU milliseconds per order, by process."""
    top = max(r["concurrency"] for r in runs)
    lines = [f"\nCPU ms per order at concurrency {top} (load generator apart):"]
    for r in runs:
        if r["concurrency"] == top and (spent := r.get("cpu_ms_per_order")):
            parts = ", ".join(f"{role} {ms:.2f}" for role, ms in spent.items() if role != "total")
            lines.append(f"- {r['system']}: {spent['total']:.2f} ({parts})")
    return lines if len(lines) > 1 else []


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
