"""The benchmark's results: JSON for tools, a Markdown report for people, small SVG charts (orders/s
by system and concurrency; the backlog over time at each sustained rate tried).

`./bench/run` writes them all from the same figures; `python -m bench.report` writes the report
and the charts again from `results/latest.json` (after a change to this module)."""

import json
from datetime import date
from pathlib import Path
from typing import Any

from bench.cpu import LOAD_GENERATOR
from bench.vegeta import NAME as VEGETA

RESULTS = Path(__file__).parent / "results"
SUSTAINED_CHART = "latest-sustained.svg"
# One colour per sustained rate tried, lowest first (repeated past the last).
RATE_COLOURS = ("#2e7d32", "#1565c0", "#6a1b9a", "#ef6c00", "#c62828", "#00838f", "#5d4037")
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
    if results.get("sustained"):
        (RESULTS / SUSTAINED_CHART).write_text(sustained_svg(results))


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
        *open_loop_table(results.get("open_loop", [])),
        *placement_lines(results),
        *sustained_section(results),
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
    caption = (
        f"CPU milliseconds per order at concurrency {top}, by process (the total leaves out "
        f"the load generator, {LOAD_GENERATOR}):"
    )
    return _by_role_table(caption, "system", spent, roles)


def _by_role_table(
    caption: str, first: str, rows: list[tuple[str, dict[str, float]]], roles: list[str]
) -> list[str]:
    """A table of CPU milliseconds: a row per label, its total, then a column per role."""
    lines = ["", caption, "", f"| {first} | total | " + " | ".join(roles) + " |",
             "| --- | --- |" + " --- |" * len(roles)]  # fmt: skip
    for label, by_role in rows:
        cells = [f"{by_role[role]:.2f}" if role in by_role else "" for role in roles]
        lines.append(f"| {label} | {by_role.get('total', 0):.2f} | " + " | ".join(cells) + " |")
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


NOT_MEASURED = "Not measured in this run."


def open_loop_table(points: list[dict[str, Any]]) -> list[str]:
    lines = ["", "## Latency at a fixed rate", ""]
    if not points:
        return [*lines, NOT_MEASURED]
    lines += [
        "Open loop (vegeta): a constant rate, each latency from the request's own start, at a "
        "fraction of the system's capacity: the floor's closed-loop peak above; the service's "
        "sustained end-to-end capacity below, on a fresh start of the service.",
        "",
        "| system | orders/s | of | p50 ms | p99 ms | p99.9 ms | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in points:
        lines.append(
            f"| {p['system']} | {p['rate_per_s']} | {p['fraction_of_capacity']:.0%} of "
            f"{p['capacity_basis']} ({p['capacity_per_s']:g}/s) "
            f"| {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['p999_ms']:.1f} | {p['errors']} |"
        )
    return lines


def sustained_section(results: dict[str, Any]) -> list[str]:
    """The headline (the highest rate taken and placed with a flat backlog), every rate tried
    with its verdict, and the CPU per placed order beside the CPU per accepted order."""
    lines = ["", "## Sustained end-to-end capacity", ""]
    found = results.get("sustained")
    if not found:
        return [*lines, NOT_MEASURED]
    lines += [_sustained_headline(found), ""]
    lines += [
        f"![Backlog over time at each rate tried]({SUSTAINED_CHART})",
        "",
        "| orders/s sent | accepted/s | placed/s | backlog (middle → end) | accept→placed p50 ms "
        "| p99 ms | dead-lettered | CPU ms per placed order | CPU bound /s | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in found["tried"]:
        verdict = "sustained" if p["sustained"] else "not sustained: " + "; ".join(p["reasons"])
        lines.append(
            f"| {p['rate_per_s']} | {p['accepted_per_s']} | {p['placed_per_s']} "
            f"| {p['backlog_start']} → {p['backlog_end']} | {p['accept_to_placed_ms']['p50']} "
            f"| {p['accept_to_placed_ms']['p99']} | {p['dead_lettered']} "
            f"| {p['cpu_ms_per_placed_order'].get('total', 0):.2f} | {p['cpu_bound_per_s']} "
            f"| {verdict} |"
        )
    return lines + _cpu_per_placed_order(results, found)


def _sustained_headline(found: dict[str, Any]) -> str:
    limit = found.get("criteria", {}).get("max_p99_ms", 3000)
    flat = f"the highest rate with a flat backlog: {found['highest_flat_rate_per_s']}/s"
    if not found["capacity_per_s"]:
        return (
            f"No rate tried was sustained (a flat backlog and accept→placed p99 within "
            f"{limit:.0f} ms, for {found['seconds']} s); {flat}."
        )
    return (
        f"**{found['capacity_per_s']} orders/s** taken and placed for {found['seconds']} s with "
        f"a flat backlog ({found['backlog_start']} → {found['backlog_end']}) and accept→placed "
        f"p50 {found['accept_to_placed_ms']['p50']} ms, p99 {found['accept_to_placed_ms']['p99']}"
        f" ms (limit {limit:.0f}): {found['fraction_of_cpu_bound']:.0%} of the CPU bound, "
        f"{found['cpu_bound_per_s']} orders/s (the cores over the CPU a placed order costs in "
        f"every process); {flat}."
    )


def _cpu_per_placed_order(results: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """At the headline rate: CPU per placed order by role, under the CPU per accepted order
    of the service at its highest concurrency (the intake alone, closed loop)."""
    placed = found["cpu_ms_per_placed_order"]
    runs = [r for r in results["runs"] if r["system"] == "service" and r.get("cpu_ms_per_order")]
    accepted = max(runs, key=lambda r: r["concurrency"]) if runs else None
    rows = [(f"per placed order at {found['rate_per_s']}/s (sustained)", placed)]
    if accepted:
        label = f"per accepted order at concurrency {accepted['concurrency']} (intake)"
        rows.insert(0, (label, accepted["cpu_ms_per_order"]))
    ignored = {"total", LOAD_GENERATOR, VEGETA}
    # Roles that spent nothing here (the benchmark's own helpers) would only widen the table.
    roles = sorted(
        {role for _, by_role in rows for role, ms in by_role.items() if ms >= 0.005} - ignored
    )
    caption = "CPU milliseconds by process of the service (load generators left out):"
    return _by_role_table(caption, "service", rows, roles)


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


def sustained_svg(results: dict[str, Any]) -> str:
    """The backlog over time at each sustained rate tried: flat lines were sustained."""
    tried = results["sustained"]["tried"]
    longest = max((len(p["backlog"]) - 1) * p["backlog_every_s"] for p in tried) or 1
    top = max((max(p["backlog"], default=0) for p in tried), default=0) or 1
    width, height, left, bottom, legend = 640, 220, 50, 30, 160
    plot_w, plot_h = width - left - legend - 10, height - bottom - 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="14">Backlog (accepted - placed - dead-lettered) over time, by '
        f"rate ({results['cores']} cores, {results['date']})</text>",
        f'<text x="4" y="{30 + 4}">{top}</text><text x="4" y="{height - bottom}">0</text>',
        f'<text x="{left}" y="{height - 8}">0 s</text>',
        f'<text x="{left + plot_w - 20}" y="{height - 8}">{longest} s</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{left + plot_w}" '
        f'y2="{height - bottom}" stroke="#999"/>',
    ]
    for i, point in enumerate(tried):
        colour = RATE_COLOURS[i % len(RATE_COLOURS)]
        step = point["backlog_every_s"]
        xy = " ".join(
            f"{left + n * step / longest * plot_w:.1f},{height - bottom - b / top * plot_h:.1f}"
            for n, b in enumerate(point["backlog"])
        )
        verdict = "sustained" if point["sustained"] else "not sustained"
        parts.append(
            f'<polyline points="{xy}" fill="none" stroke="{colour}" stroke-width="1.5">'
            f"<title>{point['rate_per_s']}/s: {verdict}</title></polyline>"
        )
        y = 40 + i * 16
        parts.append(
            f'<rect x="{width - 120}" y="{y - 9}" width="10" height="10" fill="{colour}"/>'
        )
        mark = "" if point["sustained"] else " (not sustained)"
        parts.append(f'<text x="{width - 106}" y="{y}">{point["rate_per_s"]}/s{mark}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def today() -> str:
    return date.today().isoformat()


if __name__ == "__main__":
    write_views(json.loads((RESULTS / "latest.json").read_text()))
