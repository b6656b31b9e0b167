"""The fleet benchmark's results: the stdout tables and the JSON document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from _fleet import (
    COMMANDS_TARGET,
    LIBRARY,
    LOCAL_P99_TARGET_NS,
    PROBE_SLACK,
    RECOVERY_TARGET,
    STORE_SUFFIX,
    STORE_TARGET,
    CommandCount,
    Commands,
    Freeze,
    Latencies,
    Phase,
    Row,
    TimingCase,
)
from _impls import SUBJECT
from _report import VERDICT, row, status_row

if TYPE_CHECKING:
    from _fleet_propagation import Propagation

# Trip to every other process's hook, p99, on loopback.
PROPAGATION_TARGET: Final = 0.010
WIDTH: Final = 24


@dataclass(frozen=True)
class Results:
    """Everything one run measured."""

    timing: list[TimingCase]
    commands: Commands
    propagation: Propagation
    freeze: Freeze


def _met(met: bool | None) -> str:
    return {None: "not measured", True: "met", False: "MISSED"}[met]


# -- timing ---------------------------------------------------------------------


def _store_line(case: TimingCase) -> str:
    ratio = case.store_ratio
    if ratio is None:
        return f"  {LIBRARY}: not measured"
    text = (
        f"  {LIBRARY} / {SUBJECT}: {ratio:,.2f}x"
        f" (target <= {STORE_TARGET:g}x: {_met(case.target_met)})"
    )
    ours = case.rows.get(LIBRARY)
    theirs = case.rows.get("pybreaker" + STORE_SUFFIX)
    if isinstance(ours, Row) and isinstance(theirs, Row):
        factor = theirs.ns_per_call / ours.ns_per_call
        text += f"; pybreaker{STORE_SUFFIX} takes {factor:,.0f}x as long"
    return text


def timing_block(case: TimingCase) -> str:
    """Return the text block of one timing case."""
    lines = [
        (
            f"{case.title}  (bare: {case.baseline}; x no store: the same library"
            " without Redis, round by round)"
        ),
        row("", "ns/call", "x bare", "x no store", width=WIDTH),
    ]
    for name, outcome in case.rows.items():
        if isinstance(outcome, str):
            lines.append(status_row(name, outcome, width=WIDTH))
            continue
        local = "" if outcome.vs_local is None else f"{outcome.vs_local:,.2f}x"
        lines.append(
            row(
                name,
                f"{outcome.ns_per_call:,.1f}",
                f"{outcome.vs_bare:,.2f}x",
                local,
                width=WIDTH,
            )
        )
    lines.append(_store_line(case))
    return "\n".join(lines)


# -- commands -------------------------------------------------------------------


def _net_text(count: CommandCount) -> str:
    net = {name: n for name, n in count.net.items() if n}
    if not net:
        return "none"
    scale = 10_000 / count.calls
    shown = sorted(net.items(), key=lambda item: -abs(item[1]))
    return ", ".join(f"{name} {n * scale:,.1f}" for name, n in shown)


def commands_block(commands: Commands) -> str:
    """Return the text block of the command counts."""
    lines = [
        (
            "Redis commands per 10,000 successful calls  (INFO commandstats before"
            " and after, less an idle interval as long; commands run by Lua"
            f" scripts count; {SUBJECT} < {COMMANDS_TARGET:g}:"
            f" {VERDICT[commands.target_met]})"
        ),
        row("", "calls", "seconds", "busy", "idle", "per 10,000", width=WIDTH),
    ]
    for count in commands.counts:
        if isinstance(count, tuple):
            lines.append(status_row(*count, width=WIDTH))
            continue
        lines.append(
            row(
                count.library,
                f"{count.calls:,}",
                f"{count.seconds:,.3f}",
                f"{sum(count.busy.values()):,}",
                f"{sum(count.idle.values()):,}",
                f"{count.per_10k:,.2f}",
                width=WIDTH,
            )
        )
        lines.append(f"      {count.title}; per 10,000 calls: {_net_text(count)}")
    lines.append(
        f"  background: one idle {LIBRARY} store with one breaker, default"
        f" settings: {commands.background_per_second:,.1f} commands/s"
    )
    return "\n".join(lines)


# -- propagation ----------------------------------------------------------------


def _latencies(values: list[float]) -> Latencies | None:
    return Latencies.of(values) if len(values) >= 2 else None


def _propagation_rows(result: Propagation) -> dict[str, tuple[list[float], int]]:
    others = result.processes - 1
    return {
        "open, each process": (result.opened, result.missed_open),
        f"open, all {others}": (result.opened_all, result.missed_open),
        "close, each process": (result.closed, result.missed_close),
        f"close, all {others}": (result.closed_all, result.missed_close),
    }


def propagation_met(result: Propagation) -> bool | None:
    """Whether p99 from a trip to every other process's on_open is <= 10 ms."""
    slowest = _latencies(result.opened_all)
    if slowest is None:
        return None
    return not result.missed_open and slowest.p99 <= PROPAGATION_TARGET


def propagation_block(result: Propagation) -> str:
    """Return the text block of trip propagation."""
    lines = [
        (
            f"trip propagation across {result.processes} processes,"
            f" {result.rounds} rounds  (trip() or reset() in one, on_open or"
            " on_close hook in the others, time.monotonic(); all: the slowest"
            f" process of each round; target p99 <= {PROPAGATION_TARGET * 1e3:g}"
            f" ms: {VERDICT[propagation_met(result)]})"
        ),
        row("", "p50 ms", "p99 ms", "max ms", "samples", "missed", width=WIDTH),
    ]
    for name, (values, missed) in _propagation_rows(result).items():
        figures = _latencies(values)
        if figures is None:
            lines.append(status_row(name, f"no figures ({missed} missed)", width=WIDTH))
            continue
        lines.append(
            row(
                name,
                f"{figures.p50 * 1e3:,.2f}",
                f"{figures.p99 * 1e3:,.2f}",
                f"{figures.max * 1e3:,.2f}",
                f"{figures.calls:,}",
                f"{missed:,}",
                width=WIDTH,
            )
        )
    return "\n".join(lines)


# -- freeze ---------------------------------------------------------------------


def _probes_text(phase: Phase) -> str:
    if not phase.probes:
        return "none"
    return ", ".join(
        f"at {probe.at:.2f} s {probe.seconds * 1e3:,.3f} ms"
        + ("" if probe.admitted else " (rejected)")
        for probe in phase.probes
    )


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.3f} s"


def freeze_block(freeze: Freeze) -> str:
    """Return the text block of calls while Redis is frozen."""
    lines = [
        (
            f"calls while redis-server is frozen (SIGSTOP) for {freeze.seconds:g}"
            " s  (each call timed alone; claim_timeout"
            f" {freeze.claim_timeout * 1e3:g} ms)"
        ),
        row("", "p50 us", "p99 us", "max us", "calls", width=WIDTH),
    ]
    for label, phase in (
        ("before", freeze.before),
        ("frozen", freeze.during),
        ("after thaw", freeze.after),
    ):
        for kind, figures in (
            ("closed", phase.closed),
            ("open", phase.rejected),
            ("no store", phase.alone),
        ):
            lines.append(
                row(
                    f"{kind}, {label}",
                    f"{figures.p50 / 1e3:,.2f}",
                    f"{figures.p99 / 1e3:,.2f}",
                    f"{figures.max / 1e3:,.1f}",
                    f"{figures.calls:,}",
                    width=WIDTH,
                )
            )
    lines.append(f"  half-open calls, before: {_probes_text(freeze.before)}")
    lines.append(f"  half-open calls, frozen: {_probes_text(freeze.during)}")
    lines.append(
        f"  StoreDegraded {_seconds(freeze.degraded_after)} after SIGSTOP;"
        f" StoreRecovered {_seconds(freeze.recovered_after)} after SIGCONT;"
        f" then store.healthy = {freeze.healthy_after}"
    )
    lines.append(
        f"  closed and open p99 while frozen <= {LOCAL_P99_TARGET_NS / 1e3:g} us:"
        f" {VERDICT[freeze.local_met]}; half-open calls <= claim_timeout"
        f" + {PROBE_SLACK * 1e3:g} ms: {VERDICT[freeze.probes_met]}; healthy"
        f" within {RECOVERY_TARGET:g} s of SIGCONT: {VERDICT[freeze.recovery_met]}"
    )
    return "\n".join(lines)


# -- summary and JSON -------------------------------------------------------------


def targets(results: Results) -> dict[str, tuple[str, bool | None]]:
    """Every target of the run: its key, what it asks, whether it is met."""
    verdicts: dict[str, tuple[str, bool | None]] = {
        f"{case.key}_store_ratio": (
            f"{case.key}: {LIBRARY} / {SUBJECT} <= {STORE_TARGET:g}x",
            case.target_met,
        )
        for case in results.timing
    }
    freeze = results.freeze
    verdicts |= {
        "commands_per_10k": (
            f"commands per 10,000 calls < {COMMANDS_TARGET:g}",
            results.commands.target_met,
        ),
        "propagation_p99": (
            f"propagation p99 <= {PROPAGATION_TARGET * 1e3:g} ms",
            propagation_met(results.propagation),
        ),
        "frozen_local": (
            f"frozen: closed and open p99 <= {LOCAL_P99_TARGET_NS / 1e3:g} us",
            freeze.local_met,
        ),
        "frozen_half_open": (
            f"frozen: half-open <= claim_timeout + {PROBE_SLACK * 1e3:g} ms",
            freeze.probes_met,
        ),
        "thawed_recovery": (
            f"thawed: healthy within {RECOVERY_TARGET:g} s",
            freeze.recovery_met,
        ),
    }
    return verdicts


def summary_block(results: Results) -> str:
    """Return the closing list of every target."""
    lines = [f"targets of {SUBJECT} with a RedisStore"]
    lines.extend(
        f"  {title:<52} {VERDICT[met]}" for title, met in targets(results).values()
    )
    return "\n".join(lines)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _latencies_json(
    figures: Latencies | None, scale: float, digits: int = 3
) -> dict[str, Any] | None:
    if figures is None:
        return None
    return {
        "samples": figures.calls,
        "p50": round(figures.p50 * scale, digits),
        "p99": round(figures.p99 * scale, digits),
        "max": round(figures.max * scale, digits),
    }


def _phase_json(phase: Phase) -> dict[str, Any]:
    return {
        "closed_us": _latencies_json(phase.closed, 1e-3),
        "open_us": _latencies_json(phase.rejected, 1e-3),
        "closed_no_store_us": _latencies_json(phase.alone, 1e-3),
        "half_open": [
            {
                "at_s": round(probe.at, 3),
                "ms": round(probe.seconds * 1e3, 3),
                "admitted": probe.admitted,
            }
            for probe in phase.probes
        ],
    }


def _row_json(outcome: Row | str) -> dict[str, Any]:
    if isinstance(outcome, str):
        return {"status": outcome}
    return {
        "ns_per_call": round(outcome.ns_per_call, 2),
        "ratio": round(outcome.vs_bare, 3),
        "ratio_to_no_store": _round(outcome.vs_local),
    }


def _count_json(count: CommandCount | tuple[str, str]) -> dict[str, Any]:
    if isinstance(count, tuple):
        return {"library": count[0], "status": count[1]}
    return {
        "library": count.library,
        "title": count.title,
        "calls": count.calls,
        "seconds": round(count.seconds, 4),
        "busy": dict(count.busy),
        "idle": dict(count.idle),
        "per_10k_calls": round(count.per_10k, 3),
    }


def _timing_json(case: TimingCase) -> dict[str, Any]:
    return {
        "title": case.title,
        "baseline": case.baseline,
        "target_ratio_to_no_store": STORE_TARGET,
        "target_met": case.target_met,
        "results": {name: _row_json(outcome) for name, outcome in case.rows.items()},
    }


def _commands_json(commands: Commands) -> dict[str, Any]:
    return {
        "target_per_10k": COMMANDS_TARGET,
        "target_met": commands.target_met,
        "background_per_second": round(commands.background_per_second, 2),
        "results": [_count_json(count) for count in commands.counts],
    }


def _propagation_json(propagation: Propagation) -> dict[str, Any]:
    return {
        "processes": propagation.processes,
        "rounds": propagation.rounds,
        "target_p99_ms": PROPAGATION_TARGET * 1e3,
        "target_met": propagation_met(propagation),
        "missed_open": propagation.missed_open,
        "missed_close": propagation.missed_close,
        "ms": {
            name: _latencies_json(_latencies(values), 1e3)
            for name, (values, _) in _propagation_rows(propagation).items()
        },
    }


def _freeze_json(freeze: Freeze) -> dict[str, Any]:
    return {
        "seconds": freeze.seconds,
        "claim_timeout_ms": freeze.claim_timeout * 1e3,
        "before": _phase_json(freeze.before),
        "frozen": _phase_json(freeze.during),
        "after_thaw": _phase_json(freeze.after),
        "degraded_after_s": _round(freeze.degraded_after),
        "recovered_after_s": _round(freeze.recovered_after),
        "healthy_after": freeze.healthy_after,
    }


def to_json(meta: dict[str, Any], results: Results) -> dict[str, Any]:
    """Return the machine-readable document that ``--json`` writes."""
    return {
        "meta": meta,
        "timing": {case.key: _timing_json(case) for case in results.timing},
        "commands": _commands_json(results.commands),
        "propagation": _propagation_json(results.propagation),
        "freeze": _freeze_json(results.freeze),
        "targets": {
            key: {"title": title, "met": met}
            for key, (title, met) in targets(results).items()
        },
    }
