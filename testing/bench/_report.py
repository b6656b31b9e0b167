"""Results: the stdout tables and the JSON document."""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import dataclass
from typing import Any

from _impls import SUBJECT
from _measure import Timing

BARE = "bare"

# A measured value, or a status saying why there is none ("not installed", "n/a").
Outcome = Timing | str
Allocation = tuple[int, int, int, int] | str
# Microseconds per decoration and bytes each decoration leaves held, or a status.
Decoration = tuple[float, float] | str


def machine_meta() -> dict[str, Any]:
    """Return what a run's header and JSON say about the machine and the date."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


# How far ahead of the best peer the subject should be on a timed case: the
# best peer's ratio divided by the subject's.
LEAD_WANTED = 2.0


@dataclass(frozen=True)
class Lead:
    """How far the subject is ahead of the fastest peer that can do a case."""

    best_peer: str
    best_peer_ratio: float
    factor: float  # the best peer's ratio / the subject's ratio

    @property
    def wanted(self) -> bool:
        """Whether the subject is at least ``LEAD_WANTED`` times ahead."""
        return self.factor >= LEAD_WANTED


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one timed case for the bare call and every library."""

    key: str
    title: str
    baseline: str
    target: float | None
    outcomes: dict[str, Outcome]

    def _subject_ratio(self) -> float | None:
        outcome = self.outcomes.get(SUBJECT)
        return None if outcome is None or isinstance(outcome, str) else outcome.ratio

    @property
    def target_met(self) -> bool | None:
        """Whether the subject meets the target; ``None`` if there is none to meet."""
        ratio = self._subject_ratio()
        if self.target is None or ratio is None:
            return None
        return ratio <= self.target

    @property
    def lead(self) -> Lead | None:
        """The subject's lead on the best peer; ``None`` if either is missing."""
        ratio = self._subject_ratio()
        peers = {
            name: outcome.ratio
            for name, outcome in self.outcomes.items()
            if name not in {BARE, SUBJECT} and not isinstance(outcome, str)
        }
        if ratio is None or not peers:
            return None
        best = min(peers, key=peers.__getitem__)
        return Lead(
            best_peer=best, best_peer_ratio=peers[best], factor=peers[best] / ratio
        )


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
    subject: str = SUBJECT

    @property
    def subject_stays_flat(self) -> bool | None:
        """Whether the subject's memory stays flat; ``None`` if not measured."""
        outcome = self.outcomes.get(self.subject)
        if outcome is None or isinstance(outcome, str):
            return None
        peak, retained, peak_10x, retained_10x = outcome
        growth = max(peak_10x - peak, retained_10x - retained)
        return growth <= GROWTH_SLACK_BYTES and peak <= GROWTH_SLACK_BYTES * 8


DECORATE_FAMILIES = {
    "breaker": "@breaker, one breaker reused",
    "retry": "@policy, one retry policy reused",
}


@dataclass(frozen=True)
class DecorateResult:
    """
    What decorating a fresh function costs, with a breaker and a retry policy.

    ``outcomes`` maps each family (``"breaker"``, ``"retry"``) to the outcome
    of the bare decorator and of every library: microseconds per decoration,
    and the bytes each of ``decorations`` decorate-call-drop cycles left held.
    """

    function: str
    decorations: int
    target_us: float
    slack_bytes: float  # allowed per decoration
    one_off_bytes: float  # allowed once, whatever the number of decorations
    outcomes: dict[str, dict[str, Decoration]]

    @property
    def allowed_bytes(self) -> float:
        """The bytes kept per decoration that still count as ~0, for this run."""
        return self.slack_bytes + self.one_off_bytes / self.decorations

    @property
    def subject_meets_target(self) -> bool | None:
        """Whether the subject is fast and leaves ~nothing; ``None`` if unmeasured."""
        verdicts = []
        for family in self.outcomes.values():
            outcome = family.get(SUBJECT)
            if outcome is None or isinstance(outcome, str):
                return None
            micros, retained = outcome
            verdicts.append(micros <= self.target_us and retained <= self.allowed_bytes)
        return all(verdicts) if verdicts else None


NAME_WIDTH = 16
VERDICT = {None: "not measured", True: "PASS", False: "FAIL"}


def row(name: str, *cells: str, width: int = NAME_WIDTH) -> str:
    """Return one table row: the name left-aligned in *width*, then the cells."""
    return f"  {name:<{width}}" + "".join(f"{cell:>14}" for cell in cells)


def status_row(name: str, status: str, *, width: int = NAME_WIDTH) -> str:
    """Return the row of an implementation with no figures, only a status."""
    return f"  {name:<{width}}    {status}"


def _lead_text(case: CaseResult) -> str:
    lead = case.lead
    if lead is None:
        if case.target_met is None:
            return f"no lead: {SUBJECT} not measured"
        return "no peer can"
    wanted = "yes" if lead.wanted else "no"
    return (
        f"{lead.factor:,.2f}x ahead of {lead.best_peer} {lead.best_peer_ratio:,.2f}x"
        f" (>= {LEAD_WANTED:g}x: {wanted})"
    )


def case_block(case: CaseResult) -> str:
    """Return the text block of one timed case."""
    target = f"; target <= {case.target:g}x" if case.target is not None else ""
    lines = [f"{case.title}  (bare: {case.baseline}{target})"]
    lines.append(row("", "ns/call", "ratio"))
    for name, outcome in case.outcomes.items():
        if isinstance(outcome, str):
            lines.append(status_row(name, outcome))
        else:
            lines.append(
                row(name, f"{outcome.ns_per_call:,.1f}", f"{outcome.ratio:,.2f}x")
            )
    if case.target is not None:
        met = {None: "not measured", True: "met", False: "MISSED"}[case.target_met]
        lines.append(f"  {SUBJECT}: target {met}; {_lead_text(case)}")
    return "\n".join(lines)


def summary_block(
    cases: list[CaseResult], memory: MemoryResult, decorate: DecorateResult
) -> str:
    """Return the closing table: every target, and the lead on the best peer."""
    width = max(len(case.key) for case in cases)
    lines = [
        (
            f"targets of {SUBJECT}  (lead: best peer ratio / {SUBJECT} ratio,"
            f" >= {LEAD_WANTED:g}x wanted)"
        ),
        f"  {'case':<{width}}  {'target':>8}  {SUBJECT:>11}  {'met':>6}  lead",
    ]
    for case in cases:
        if case.target is None:
            continue
        outcome = case.outcomes.get(SUBJECT)
        value = "-" if not isinstance(outcome, Timing) else f"{outcome.ratio:,.2f}x"
        met = {None: "-", True: "yes", False: "NO"}[case.target_met]
        lines.append(
            f"  {case.key:<{width}}  {f'<= {case.target:g}x':>8}  {value:>11}"
            f"  {met:>6}  {_lead_text(case)}"
        )
    lines.append(f"  {_guarded_text(cases)}")
    size = memory.outcomes.get(SUBJECT, "not measured")
    shown = size if isinstance(size, str) else f"{size:,.0f}"
    lines.append(
        f"  bytes per breaker: {SUBJECT} {shown} (target <= {memory.target:g})"
    )
    lines.append(
        f"  decorating: <= {decorate.target_us:g} us and ~0 bytes kept per"
        f" decoration: {VERDICT[decorate.subject_meets_target]}"
    )
    return "\n".join(lines)


# A deadline and a result predicate may cost this much over the plain policy.
GUARDED_TARGET = 1.3


def _guarded_text(cases: list[CaseResult]) -> str:
    """Say how the guarded retry case compares with the plain one."""
    ratios = {}
    for case in cases:
        outcome = case.outcomes.get(SUBJECT)
        if case.key in ("retry_sync_success", "retry_sync_guarded") and isinstance(
            outcome, Timing
        ):
            ratios[case.key] = outcome.ratio
    if len(ratios) < 2:
        return "deadline + result predicate over the plain policy: not measured"
    over = ratios["retry_sync_guarded"] / ratios["retry_sync_success"]
    verdict = "yes" if over <= GUARDED_TARGET else "NO"
    return (
        f"deadline + result predicate: {over:.2f}x the plain policy"
        f" (target <= {GUARDED_TARGET:g}x: {verdict})"
    )


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
            lines.append(status_row(name, outcome))
        else:
            lines.append(row(name, f"{outcome:,.0f}"))
    return "\n".join(lines)


def allocation_block(result: AllocationResult) -> str:
    """Return the text block of the allocation check."""
    verdict = VERDICT[result.subject_stays_flat]
    lines = [
        (
            f"bytes held over {result.calls:,} and {result.calls * 10:,} success calls"
            f" on a closed breaker  ({result.subject} stays flat: {verdict})"
        ),
        row("", "peak", "retained", "peak 10x", "retained 10x"),
    ]
    for name, outcome in result.outcomes.items():
        if isinstance(outcome, str):
            lines.append(status_row(name, outcome))
        else:
            lines.append(row(name, *(f"{value:,}" for value in outcome)))
    return "\n".join(lines)


def decorate_block(result: DecorateResult) -> str:
    """Return the text block of the decorating measurement."""
    lines = [
        (
            f"decorating a fresh `{result.function}`; kept: bytes still held per"
            f" decoration after {result.decorations:,} decorate-call-drop cycles"
            f" and gc.collect()  ({SUBJECT} <= {result.target_us:g} us and"
            f" <= {result.allowed_bytes:.3g} bytes kept:"
            f" {VERDICT[result.subject_meets_target]})"
        ),
        row("", "us/decoration", "bytes kept"),
    ]
    for family, outcomes in result.outcomes.items():
        lines.append(f"  {DECORATE_FAMILIES[family]}")
        for name, outcome in outcomes.items():
            if isinstance(outcome, str):
                lines.append(status_row(name, outcome))
            else:
                micros, retained = outcome
                lines.append(row(name, f"{micros:,.2f}", f"{retained:,.1f}"))
    return "\n".join(lines)


def _lead_json(lead: Lead | None) -> dict[str, Any] | None:
    if lead is None:
        return None
    return {
        "best_peer": lead.best_peer,
        "best_peer_ratio": round(lead.best_peer_ratio, 3),
        "factor": round(lead.factor, 3),
        "at_least_2x": lead.wanted,
    }


def _decoration_json(outcome: Decoration) -> dict[str, Any]:
    if isinstance(outcome, str):
        return {"status": outcome}
    micros, retained = outcome
    return {
        "us_per_decoration": round(micros, 3),
        "retained_bytes_per_decoration": round(retained, 2),
    }


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
    decorate: DecorateResult,
) -> dict[str, Any]:
    """Return the machine-readable document that ``--json`` writes."""
    return {
        "meta": meta,
        "cases": {
            case.key: {
                "title": case.title,
                "baseline": case.baseline,
                "target_ratio": case.target,
                "target_met": case.target_met,
                "lead": _lead_json(case.lead),
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
        "decorate": {
            "function": decorate.function,
            "decorations": decorate.decorations,
            "target_us": decorate.target_us,
            "retained_slack_bytes": round(decorate.allowed_bytes, 3),
            "retained_one_off_bytes": decorate.one_off_bytes,
            "subject_meets_target": decorate.subject_meets_target,
            **{
                family: {
                    "title": DECORATE_FAMILIES[family],
                    "results": {
                        name: _decoration_json(outcome)
                        for name, outcome in outcomes.items()
                    },
                }
                for family, outcomes in decorate.outcomes.items()
            },
        },
    }
