"""
Sphinx extension: the performance page's table and chart, from the benchmark's JSON.

At build time it reads the committed results of the latest full benchmark runs
(``testing/bench/results/run*.json``) and writes, under ``docs/_generated/``,
an reStructuredText table that ``performance.rst`` includes and the bar chart
that ``testing/bench/plot.py`` draws. The page therefore always shows exactly
what the JSON says.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sphinx.application import Sphinx

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "testing" / "bench" / "results"
GENERATED = ROOT / "docs" / "_generated"
SUBJECT = "aiobreakers"


def _runs() -> list[dict[str, Any]]:
    paths = sorted(RESULTS.glob("run*.json"))
    if not paths:
        raise RuntimeError(f"no benchmark results in {RESULTS}")
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


def _best_peer(results: dict[str, dict[str, Any]], field: str) -> str:
    peers = {
        name: result[field]
        for name, result in results.items()
        if name not in {SUBJECT, "bare"} and field in result
    }
    if not peers:
        return "none can"
    name = min(peers, key=peers.__getitem__)
    unit = "x" if field == "ratio" else ""
    return f"{name} {peers[name]:,.3g}{unit}"


def table(runs: list[dict[str, Any]]) -> str:
    """Return the rst list-table of every targeted case, one column per run."""
    header = ["case", "target", *(f"run {n}" for n in range(1, len(runs) + 1))]
    rows: list[list[str]] = []
    first = runs[0]
    for key, case in first["cases"].items():
        target = case["target_ratio"]
        if target is None:
            continue
        cells = []
        for run in runs:
            ratio = run["cases"][key]["results"][SUBJECT]["ratio"]
            mark = "met" if ratio <= target else "missed"
            cells.append(f"{ratio:.2f}x ({mark})")
        rows.append([case["title"], f"<= {target:g}x", *cells, ""])
        rows[-1][-1] = _best_peer(case["results"], "ratio")
    memory = first["memory"]
    cells = []
    for run in runs:
        size = run["memory"]["results"][SUBJECT]["bytes_per_breaker"]
        mark = "met" if size <= memory["target_bytes"] else "missed"
        cells.append(f"{size:.0f} B ({mark})")
    rows.append(
        [
            memory["title"],
            f"<= {memory['target_bytes']:.0f} B",
            *cells,
            _best_peer(memory["results"], "bytes_per_breaker"),
        ]
    )
    header.append("best peer (run 1)")
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    meta = first["meta"]
    lines += [
        "",
        (
            f"Measured on {meta['date'][:10]}: {meta['implementation']}"
            f" {meta['python']}, {meta['cpus']} CPUs, {meta['rounds']} interleaved"
            " rounds per case, median ratios."
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
