"""
Turn the JSON written by ``run.py --json`` into a bar chart PNG.

Usage: ``python testing/bench/plot.py results.json [chart.png]``. Needs
matplotlib (listed in ``requirements.txt``; the benchmark itself does not).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

SUBJECT = "aiobreakers"
SUBJECT_COLOUR = "#d1495b"
PEER_COLOUR = "#8d99ae"
BARE = "bare"


@dataclass(frozen=True)
class Panel:
    """One horizontal bar chart: a value per implementation."""

    title: str
    values: dict[str, float]
    unit: str
    target: float | None
    log: bool


def _measured(results: dict[str, dict[str, Any]], field: str) -> dict[str, float]:
    """Return ``field`` of every implementation that has it (skips statuses)."""
    return {
        name: float(result[field])
        for name, result in results.items()
        if name != BARE and field in result
    }


def panels(document: dict[str, Any]) -> list[Panel]:
    """Return the panels: one per timed case, memory, allocations, decorating."""
    charts = [
        Panel(
            title=case["title"],
            values=_measured(case["results"], "ratio"),
            unit="x bare call",
            target=case["target_ratio"],
            log=True,
        )
        for case in document["cases"].values()
    ]
    memory = document["memory"]
    charts.append(
        Panel(
            title=memory["title"],
            values=_measured(memory["results"], "bytes_per_breaker"),
            unit="bytes per breaker",
            target=memory["target_bytes"],
            log=False,
        )
    )
    allocations = document["allocations"]
    charts.append(
        Panel(
            title=f"peak bytes over {allocations['calls'] * 10:,} closed-breaker calls",
            values=_measured(allocations["results"], "peak_x10"),
            unit="bytes",
            target=None,
            log=False,
        )
    )
    decorate = document.get("decorate", {})  # not in runs older than it
    charts.extend(
        Panel(
            title=f"decorating a fresh function, {decorate[family]['title']}",
            values=_measured(decorate[family]["results"], "us_per_decoration"),
            unit="microseconds per decoration",
            target=decorate["target_us"],
            log=False,
        )
        for family in ("breaker", "retry")
        if family in decorate
    )
    return [chart for chart in charts if chart.values]


def _draw(axes: Any, panel: Panel, ticker: Any) -> None:
    names = list(panel.values)
    values = [panel.values[name] for name in names]
    colours = [SUBJECT_COLOUR if name == SUBJECT else PEER_COLOUR for name in names]
    axes.barh(names, values, color=colours)
    axes.invert_yaxis()
    if panel.log:
        # Ratios start at 1 (as fast as a bare call) and span decades.
        axes.set_xscale("log")
        axes.set_xlim(left=1, right=max(values) * 2)
        axes.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}"))
        axes.xaxis.set_minor_formatter(ticker.NullFormatter())
    if panel.target is not None:
        axes.axvline(panel.target, color=SUBJECT_COLOUR, linestyle="--", linewidth=1)
    for row, value in enumerate(values):
        axes.annotate(
            f" {value:,.3g}",
            (value, row),
            va="center",
            fontsize=7,
            annotation_clip=False,
        )
    axes.set_title(panel.title, fontsize=9)
    axes.set_xlabel(panel.unit, fontsize=8)
    axes.tick_params(labelsize=8)


def render(document: dict[str, Any], output: Path) -> None:
    """Draw every panel on one figure and save it as PNG to ``output``."""
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    pyplot: Any = importlib.import_module("matplotlib.pyplot")
    ticker: Any = importlib.import_module("matplotlib.ticker")
    charts = panels(document)
    columns = 2
    rows = max(1, math.ceil(len(charts) / columns))
    figure, grid = pyplot.subplots(
        rows, columns, figsize=(12, 2.4 * rows), squeeze=False
    )
    cells = [cell for row in grid for cell in row]
    for cell, panel in zip(cells, charts, strict=False):
        _draw(cell, panel, ticker)
    for cell in cells[len(charts) :]:
        cell.set_visible(False)
    meta = document["meta"]
    figure.suptitle(
        f"aiobreakers and peers, lower is better (dashed: target)"
        f" - Python {meta['python']}, {meta['cpus']} CPUs",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(output, dpi=120)
    pyplot.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    """Read the JSON, write the PNG; exit 1 if matplotlib is missing."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("results", type=Path, help="JSON written by run.py --json")
    parser.add_argument(
        "output",
        type=Path,
        nargs="?",
        help="PNG to write (default: the results path with a .png suffix)",
    )
    args = parser.parse_args(argv)
    output: Path = args.output or args.results.with_suffix(".png")
    document = json.loads(args.results.read_text(encoding="utf-8"))
    try:
        render(document, output)
    except ImportError:
        print(
            "plot.py needs matplotlib: "
            "python -m pip install -r testing/bench/requirements.txt",
            file=sys.stderr,
        )
        return 1
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
