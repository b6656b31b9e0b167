"""Results: the stdout table and the JSON document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from _measure import Timing

BARE = "bare"

# A measured value, or a status saying why there is none ("not installed", "n/a").
Outcome = Timing | str
Allocation = tuple[int, int, int, int] | str


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one timed case for the bare call and every library."""

    key: str
    title: str
    baseline: str
    target: float | None
    outcomes: dict[str, Outcome]


@dataclass(frozen=True)
class MemoryResult:
    """Traced bytes per live breaker, over ``count`` breakers."""

    count: int
    target: float
    outcomes: dict[str, float | str]


# CPython allocates a new int or float object for a counter past 256 or a
# sum: a call may swap one such object for another (a few dozen bytes held at
# once, whatever the number of calls). What must not happen is growth.
GROWTH_SLACK_BYTES = 64


@dataclass(frozen=True)
class AllocationResult:
    """
    Bytes held around success calls on a closed breaker, nobody listening.

    Each outcome is (peak, retained) after ``calls`` calls, then after ten
    times as many: memory that does not grow with the number of calls means no
    per-call allocation is kept or piles up.
    """

    calls: int
    outcomes: dict[str, Allocation]
    subject: str

    @property
    def subject_stays_flat(self) -> bool | None:
        """Whether the subject's memory stays flat; ``None`` if not measured."""
        outcome = self.outcomes.get(self.subject)
        if outcome is None or isinstance(outcome, str):
            return None
        peak, retained, peak_10x, retained_10x = outcome
        growth = max(peak_10x - peak, retained_10x - retained)
        return growth <= GROWTH_SLACK_BYTES and peak <= GROWTH_SLACK_BYTES * 8


_NAME_WIDTH = 16


def _row(name: str, *cells: str) -> str:
    return f"  {name:<{_NAME_WIDTH}}" + "".join(f"{cell:>14}" for cell in cells)


def _status_row(name: str, status: str) -> str:
    return f"  {name:<{_NAME_WIDTH}}    {status}"


def case_block(case: CaseResult) -> str:
    """Return the text block of one timed case."""
    target = f"; target <= {case.target:g}x" if case.target is not None else ""
    lines = [f"{case.title}  (bare: {case.baseline}{target})"]
    lines.append(_row("", "ns/call", "ratio"))
    for name, outcome in case.outcomes.items():
        if isinstance(outcome, str):
            lines.append(_status_row(name, outcome))
        else:
            lines.append(
                _row(name, f"{outcome.ns_per_call:,.1f}", f"{outcome.ratio:,.2f}x")
            )
    return "\n".join(lines)


def memory_block(memory: MemoryResult) -> str:
    """Return the text block of the memory case."""
    lines = [
        (
            f"bytes per breaker, {memory.count:,} breakers alive"
            f"  (tracemalloc; target <= {memory.target:g})"
        )
    ]
    for name, outcome in memory.outcomes.items():
        if isinstance(outcome, str):
            lines.append(_status_row(name, outcome))
        else:
            lines.append(_row(name, f"{outcome:,.0f}"))
    return "\n".join(lines)


def allocation_block(result: AllocationResult) -> str:
    """Return the text block of the allocation check."""
    verdict = {None: "not measured", True: "PASS", False: "FAIL"}[
        result.subject_stays_flat
    ]
    lines = [
        (
            f"bytes held over {result.calls:,} and {result.calls * 10:,} success calls"
            f" on a closed breaker  ({result.subject} stays flat: {verdict})"
        ),
        _row("", "peak", "retained", "peak 10x", "retained 10x"),
    ]
    for name, outcome in result.outcomes.items():
        if isinstance(outcome, str):
            lines.append(_status_row(name, outcome))
        else:
            lines.append(_row(name, *(f"{value:,}" for value in outcome)))
    return "\n".join(lines)


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, str):
        return {"status": outcome}
    return {
        "ns_per_call": round(outcome.ns_per_call, 2),
        "ratio": round(outcome.ratio, 3),
    }


def to_json(
    meta: dict[str, Any],
    cases: list[CaseResult],
    memory: MemoryResult,
    allocations: AllocationResult,
) -> dict[str, Any]:
    """Return the machine-readable document that ``--json`` writes."""
    return {
        "meta": meta,
        "cases": {
            case.key: {
                "title": case.title,
                "baseline": case.baseline,
                "target_ratio": case.target,
                "results": {
                    name: _outcome_json(outcome)
                    for name, outcome in case.outcomes.items()
                },
            }
            for case in cases
        },
        "memory": {
            "title": f"bytes per breaker, {memory.count:,} breakers alive",
            "count": memory.count,
            "target_bytes": memory.target,
            "results": {
                name: {"status": outcome}
                if isinstance(outcome, str)
                else {"bytes_per_breaker": round(outcome, 1)}
                for name, outcome in memory.outcomes.items()
            },
        },
        "allocations": {
            "calls": allocations.calls,
            "subject_stays_flat": allocations.subject_stays_flat,
            "results": {
                name: {"status": outcome}
                if isinstance(outcome, str)
                else dict(
                    zip(
                        ("peak", "retained", "peak_x10", "retained_x10"),
                        outcome,
                        strict=True,
                    )
                )
                for name, outcome in allocations.outcomes.items()
            },
        },
    }
