"""
Sphinx extension: the performance page's table and chart, from the benchmark's JSON.

At build time it reads the committed results of the latest full benchmark runs
(``testing/bench/results/run*.json``) and writes, under ``docs/_generated/``,
an reStructuredText table that ``performance.rst`` includes and the bar chart
that ``testing/bench/plot.py`` draws. The page therefore always shows exactly
what the JSON says.

Runs recorded before a case (or the decorating figures) existed still render:
their column reads "not measured" for it. Targets and titles are the latest
run's; a row appears once any run has it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.application import Sphinx

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "testing" / "bench" / "results"
GENERATED = ROOT / "docs" / "_generated"
SUBJECT = "aiobreakers"
MICRO = "\N{MICRO SIGN}"
NOT_MEASURED = "not measured"
# How far ahead of the best peer aiobreakers should be: best peer ratio / its own.
LEAD_WANTED = 2.0
DECORATE_FAMILIES = {"breaker": "@breaker", "retry": "@policy (retry)"}


def _runs() -> list[dict[str, Any]]:
    paths = sorted(RESULTS.glob("run*.json"))
    if not paths:
        raise RuntimeError(f"no benchmark results in {RESULTS}")
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


def _peers(results: dict[str, dict[str, Any]], field: str) -> dict[str, float]:
    return {
        name: float(result[field])
        for name, result in results.items()
        if name not in {SUBJECT, "bare"} and field in result
    }


def _best_peer(results: dict[str, dict[str, Any]], field: str, unit: str) -> str:
    peers = _peers(results, field)
    if not peers:
        return "none can"
    name = min(peers, key=peers.__getitem__)
    return f"{name} {peers[name]:,.3g}{unit}"


def _subject(results: dict[str, dict[str, Any]], field: str) -> float | str:
    """Return the subject's figure, or the status saying why it has none."""
    result = results.get(SUBJECT, {})
    if field in result:
        return float(result[field])
    return str(result.get("status", NOT_MEASURED))


def _lead(runs: list[dict[str, Any]], key: str) -> str:
    """
    Say whether the subject is ``LEAD_WANTED`` times ahead of the best peer.

    The lead of a run is the best peer's ratio over the subject's; every run
    that measured both is listed.
    """
    factors = []
    peers_can = False
    for run in runs:
        results = run["cases"].get(key, {}).get("results", {})
        ratio = _subject(results, "ratio")
        peers = _peers(results, "ratio")
        peers_can = peers_can or bool(peers)
        if isinstance(ratio, float) and peers:
            factors.append(min(peers.values()) / ratio)
    if not factors:
        return "-" if peers_can else "none can"
    verdict = "yes" if all(f >= LEAD_WANTED for f in factors) else "no"
    return f"{verdict}: " + ", ".join(f"{f:.2f}x" for f in factors)


def _case_keys(runs: list[dict[str, Any]]) -> list[str]:
    """Every case of any run: the latest run's order, then older runs' extras."""
    keys: list[str] = []
    for run in reversed(runs):
        keys.extend(key for key in run["cases"] if key not in keys)
    return keys


def _latest(runs: list[dict[str, Any]], has: Callable[[dict[str, Any]], bool]) -> Any:
    """Return the last run (the latest recorded) for which ``has(run)`` holds."""
    return next(run for run in reversed(runs) if has(run))


def _first(runs: list[dict[str, Any]], has: Callable[[dict[str, Any]], bool]) -> Any:
    return next(run for run in runs if has(run))


def _case_row(runs: list[dict[str, Any]], key: str) -> list[str] | None:
    """Return the row of a targeted case (target from the latest run having it)."""

    def has(run: dict[str, Any]) -> bool:
        return key in run["cases"]

    case = _latest(runs, has)["cases"][key]
    target = case["target_ratio"]
    if target is None:
        return None
    cells = []
    for run in runs:
        if not has(run):
            cells.append(NOT_MEASURED)
            continue
        ratio = _subject(run["cases"][key]["results"], "ratio")
        if isinstance(ratio, str):
            cells.append(ratio)
        else:
            cells.append(f"{ratio:.2f}x ({'met' if ratio <= target else 'missed'})")
    best = _best_peer(_first(runs, has)["cases"][key]["results"], "ratio", "x")
    return [case["title"], f"<= {target:g}x", *cells, best, _lead(runs, key)]


def _memory_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    """Return the row of the bytes per breaker, if any run measured them."""

    def has(run: dict[str, Any]) -> bool:
        return "memory" in run

    if not any(has(run) for run in runs):
        return []
    target = _latest(runs, has)["memory"]["target_bytes"]
    cells = []
    for run in runs:
        size = (
            _subject(run["memory"]["results"], "bytes_per_breaker")
            if has(run)
            else NOT_MEASURED
        )
        if isinstance(size, str):
            cells.append(size)
        else:
            cells.append(f"{size:.0f} B ({'met' if size <= target else 'missed'})")
    first = _first(runs, has)["memory"]
    best = _best_peer(first["results"], "bytes_per_breaker", " B")
    return [[first["title"], f"<= {target:.0f} B", *cells, best, "-"]]


def _decorate_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    """Return a row per decorator kind, for runs that measured decorating."""
    rows = []
    for family, label in DECORATE_FAMILIES.items():

        def has(run: dict[str, Any], family: str = family) -> bool:
            return family in run.get("decorate", {})

        if not any(has(run) for run in runs):
            continue
        latest = _latest(runs, has)["decorate"]
        target, slack = latest["target_us"], latest["retained_slack_bytes"]
        cells = []
        for run in runs:
            if not has(run):
                cells.append(NOT_MEASURED)
                continue
            results = run["decorate"][family]["results"]
            micros = _subject(results, "us_per_decoration")
            kept = _subject(results, "retained_bytes_per_decoration")
            if isinstance(micros, str) or isinstance(kept, str):
                cells.append(micros if isinstance(micros, str) else str(kept))
                continue
            met = "met" if micros <= target and kept <= slack else "missed"
            cells.append(f"{micros:,.1f} {MICRO}s, {kept:,.1f} B kept ({met})")
        first = _first(runs, has)["decorate"][family]["results"]
        rows.append(
            [
                f"decorating a fresh function, {label}",
                f"<= {target:g} {MICRO}s, ~0 B kept",
                *cells,
                _best_peer(first, "us_per_decoration", f" {MICRO}s"),
                "-",
            ]
        )
    return rows


def _storm_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    """Return the retry-storm row, for runs that measured it."""

    def has(run: dict[str, Any]) -> bool:
        return "storm" in run

    if not any(has(run) for run in runs):
        return []
    latest = _latest(runs, has)["storm"]
    target = latest["target_with_budget"]
    cells = []
    for run in runs:
        if not has(run):
            cells.append(NOT_MEASURED)
            continue
        storm = run["storm"]
        budgeted = [
            entry["attempts_per_call"]
            for name, entry in storm["results"].items()
            if name.startswith(f"{SUBJECT} +") and "attempts_per_call" in entry
        ]
        if not budgeted:
            cells.append(NOT_MEASURED)
            continue
        met = "met" if budgeted[0] <= target else "missed"
        cells.append(f"{budgeted[0]:.3f} attempts/call ({met})")
    first = _first(runs, has)["storm"]["results"]
    peers = {
        name: entry["attempts_per_call"]
        for name, entry in first.items()
        if not name.startswith(SUBJECT) and "attempts_per_call" in entry
    }
    best = (
        "-"
        if not peers
        else f"{min(peers, key=peers.__getitem__)} {min(peers.values()):.3f}"
    )
    return [
        [
            (
                f"retry storm: {latest['clients']} clients, a dependency that is down,"
                " with RetryBudget(ratio=0.2)"
            ),
            f"<= {target:g} attempts/call",
            *cells,
            best,
            "-",
        ]
    ]


def _environment(meta: dict[str, Any]) -> str:
    return (
        f"{meta['implementation']} {meta['python']}, {meta['cpus']} CPUs,"
        f" {meta['rounds']} interleaved rounds per case"
    )


def table(runs: list[dict[str, Any]]) -> str:
    """
    Return the rst list-table of every targeted case, one column per run.

    A case, or the decorating figures, that a run did not measure (it predates
    them) reads "not measured" in that run's column; targets and titles are
    the latest run's.
    """
    header = [
        "case",
        "target",
        *(f"run {n}" for n in range(1, len(runs) + 1)),
        "best peer (first run measuring it)",
        f"ahead of best peer >= {LEAD_WANTED:g}x",
    ]
    rows = [row for key in _case_keys(runs) if (row := _case_row(runs, key))]
    rows.extend(_memory_rows(runs))
    rows.extend(_decorate_rows(runs))
    rows.extend(_storm_rows(runs))
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    environments = {_environment(run["meta"]) for run in runs}
    dates = ", ".join(
        f"run {n} on {run['meta']['date'][:10]}" for n, run in enumerate(runs, 1)
    )
    if len(environments) == 1:
        measured = f"Measured {dates}: {environments.pop()}"
    else:
        measured = "Measured " + "; ".join(
            f"run {n} on {run['meta']['date'][:10]}: {_environment(run['meta'])}"
            for n, run in enumerate(runs, 1)
        )
    lines += [
        "",
        (
            f"{measured}; median ratios. The lead is the best peer's ratio over"
            f" {SUBJECT}' ratio, in each run."
        ),
        "",
    ]
    return "\n".join(lines)


def _plot_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_plot", ROOT / "testing" / "bench" / "plot.py"
    )
    if spec is None or spec.loader is None:
        raise RuntimeError("cannot load testing/bench/plot.py")
    module = importlib.util.module_from_spec(spec)
    # Registered first: dataclasses look their module up while it executes.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def generate(app: Sphinx) -> None:
    """Write the table and the chart before the pages are read."""
    del app
    runs = _runs()
    GENERATED.mkdir(exist_ok=True)
    (GENERATED / "performance-table.rst").write_text(table(runs), encoding="utf-8")
    _plot_module().render(runs[0], GENERATED / "bench.png")


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the generator."""
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True}
