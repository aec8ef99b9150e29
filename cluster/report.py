"""The cluster's figures for people: results/summary.md, made from the JSON files beside it
(written by `up`, `build` and the cluster suite), so that no document copies a figure by hand.
`python -m cluster report` writes it again (after a change to this module)."""

import json
from pathlib import Path
from typing import Any

from core.config import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "cluster" / "results"
SUMMARY = RESULTS_DIR / "summary.md"
SUITE = RESULTS_DIR / "suite.json"
MIB = 1024 * 1024
# Stages shorter than this are left out of the stage tables (finding a cached part, waits
# that found everything ready).
SHOWN_STAGE_SECONDS = 1.0


def write() -> Path:
    SUMMARY.write_text(markdown(load()))
    return SUMMARY


def load() -> dict[str, dict[str, Any]]:
    """Every results file, by name without `.json`."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(RESULTS_DIR.glob("*.json"))}


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# The local cluster: figures",
        "",
        "Written by `python -m cluster up`, `build` and the cluster suite from the JSON files in",
        "this folder (`python -m cluster report` writes it again). Times depend on what else the",
        "machine runs; the Go builds on how warm Go's build cache is.",
    ]
    if "cold" in results:
        lines += _up_section("A cold `up`: everything built", "cold", results["cold"])
    if "warm" in results:
        title = "A warm `up`: a new cluster from the cached parts"
        lines += _up_section(title, "warm", results["warm"])
    if "latest" in results:
        lines += _up_section("The last `up` or `build`", "latest", results["latest"])
        lines += _images(results["latest"])
    if "suite" in results:
        lines += _suite(results["suite"])
    for name, figures in results.items():
        if name not in {"cold", "warm", "latest", "suite"}:
            lines += _figures(name, figures)
    return "\n".join(lines) + "\n"


def _up_section(title: str, name: str, run: dict[str, Any]) -> list[str]:
    lines = ["", f"## {title}", ""]
    lines.append(
        f"[{name}.json]({name}.json): `{run['command']}` finished {run['finished_at']} in "
        f"**{_duration(run['total_seconds'])}**; the stages that took {SHOWN_STAGE_SECONDS:g} s "
        "or more:"
    )
    lines += ["", "| stage | seconds | |", "| --- | ---: | --- |"]
    for stage in run["stages"]:
        if stage["seconds"] >= SHOWN_STAGE_SECONDS:
            lines.append(f"| {stage['stage']} | {stage['seconds']:.1f} | {_stage_note(stage)} |")
    built = [s for s in run["stages"] if s.get("cached") is True and "cold_build" in s]
    if built:
        first = sum(_cold_seconds(stage["cold_build"]) for stage in built)
        lines += ["", f"Found in the cache: {len(built)} parts whose first builds took "
                  f"{_duration(first)} in all."]  # fmt: skip
    if run.get("cache_bytes"):
        cache = ", ".join(f"{key} {_mib(size)}" for key, size in run["cache_bytes"].items())
        lines += ["", f"The cache directory afterwards: {cache}."]
    return lines


def _stage_note(stage: dict[str, Any]) -> str:
    if stage.get("cached") is False:
        packages = stage.get("cold_build", {}).get("packages")
        return f"built ({packages} packages)" if packages else "built"
    return ""


def _cold_seconds(cold_build: dict[str, Any]) -> float:
    if "seconds" in cold_build:
        return float(cold_build["seconds"])
    return sum(_cold_seconds(part) for part in cold_build.values() if isinstance(part, dict))


def _images(run: dict[str, Any]) -> list[str]:
    sizes = dict(run.get("image_bytes", {}))
    for stage in run["stages"]:
        if stage["stage"] in {"dapr images", "metrics-server image"}:
            bytes_ = stage.get("bytes")
            sizes |= bytes_ if isinstance(bytes_, dict) else {stage["stage"]: bytes_}
    if not sizes:
        return []
    lines = ["", "## Images", "", "| image | size |", "| --- | ---: |"]
    lines += [f"| `{name}` | {_mib(size)} |" for name, size in sizes.items() if size]
    return lines


def _suite(suite: dict[str, Any]) -> list[str]:
    counts = ", ".join(f"{count} {outcome}" for outcome, count in suite["outcomes"].items())
    lines = ["", "## The cluster suite", ""]
    lines.append(
        f"[suite.json](suite.json): finished {suite['finished_at']}, {counts}, in "
        f"**{_duration(suite['seconds'])}** (the cluster's `up` included: "
        f"{'it was up before' if suite['cluster_was_up'] else 'brought up and down by the suite'})."
    )
    lines += ["", "| test | outcome | seconds |", "| --- | --- | ---: |"]
    lines += [f"| `{t['test']}` | {t['outcome']} | {t['seconds']:.1f} |" for t in suite["tests"]]
    return lines


def _figures(name: str, figures: dict[str, Any]) -> list[str]:
    lines = ["", f"## {name.replace('_', ' ').capitalize()}", "", f"[{name}.json]({name}.json):"]
    lines += [""] + [f"- {key}: {_value(value)}" for key, value in figures.items()]
    return lines


def _value(value: object) -> str:
    if isinstance(value, dict | list):
        return f"`{json.dumps(value)}`"
    return str(value)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _mib(size: int) -> str:
    return f"{size / MIB:,.0f} MiB"
