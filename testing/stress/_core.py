"""
The storm registry, the invariant log, and helpers shared by the storms.

A *storm* is a function ``(mode, log) -> None`` registered with :func:`storm`.
It hammers aiobreakers, then states what it ran (:meth:`Log.figure`) and checks
what must hold (:meth:`Log.expect`, :meth:`Log.equal`).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import math
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

from aiobreakers import CircuitBreaker, CircuitOpenError, CircuitState

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator, Iterator

    from typing_extensions import Self

T = TypeVar("T")

THREADS: Final = 8
JOIN_TIMEOUT: Final = 120.0  # seconds a batch of storm threads may take: "hung"
# Every loop that waits on a condition (a stop event, a state) also stops after
# this many seconds and rounds, so no storm can spin forever; each is far
# beyond what a storm takes on a loaded machine (the full run: minutes).
LOOP_SECONDS: Final = 600.0
LOOP_ROUNDS: Final = 10**9


# -- modes, the log, the registry -----------------------------------------------------


@dataclass(frozen=True)
class Mode:
    """How hard to hammer: the short mode CI runs, or the full one."""

    full: bool

    def pick(self, short: T, full: T) -> T:
        """Return *full* in the full mode, *short* otherwise."""
        return full if self.full else short


@dataclass(frozen=True)
class Check:
    """One invariant and whether it held."""

    what: str
    held: bool
    detail: str


@dataclass
class Log:
    """What one storm ran and what held, in the order found."""

    lines: list[str | Check] = field(default_factory=list)

    def section(self, title: str) -> None:
        """Start a part of the storm (a variant, a fault)."""
        self.lines.append(f"-- {title}")

    def figure(self, text: str) -> None:
        """Record what was run or measured."""
        self.lines.append(text)

    def expect(self, what: str, held: bool, detail: str = "") -> bool:
        """Record invariant *what*; return whether it held."""
        self.lines.append(Check(what, held, detail))
        return held

    def equal(self, what: str, actual: object, expected: object) -> bool:
        """Record that *actual* must equal *expected*."""
        sign = "==" if actual == expected else "!="
        detail = f"{actual!r} {sign} {expected!r}"
        if len(detail) > 160:
            detail = detail[:157] + "..."
        return self.expect(what, actual == expected, detail)

    def at_most(self, what: str, actual: float, bound: float) -> bool:
        """Record that *actual* must not exceed *bound*."""
        sign = "<=" if actual <= bound else ">"
        return self.expect(what, actual <= bound, f"{num(actual)} {sign} {num(bound)}")

    def at_least(self, what: str, actual: float, bound: float) -> bool:
        """Record that *actual* must reach *bound*."""
        sign = ">=" if actual >= bound else "<"
        return self.expect(what, actual >= bound, f"{num(actual)} {sign} {num(bound)}")

    @property
    def checks(self) -> list[Check]:
        """Every invariant recorded."""
        return [line for line in self.lines if isinstance(line, Check)]


@dataclass(frozen=True)
class Storm:
    """A registered storm."""

    name: str
    summary: str
    run: Callable[[Mode, Log], None]


STORMS: Final[dict[str, Storm]] = {}


def storm(
    name: str, summary: str
) -> Callable[[Callable[[Mode, Log], None]], Callable[[Mode, Log], None]]:
    """Register the decorated function as the storm *name*."""

    def register(run: Callable[[Mode, Log], None]) -> Callable[[Mode, Log], None]:
        if name in STORMS:
            raise ValueError(f"storm {name!r} is registered twice")
        STORMS[name] = Storm(name, summary, run)
        return run

    return register


def rounds(seconds: float = LOOP_SECONDS, most: int = LOOP_ROUNDS) -> Iterator[int]:
    """
    Number the rounds of a loop: at most *most* of them, none after *seconds*.

    For loops that end on a condition (``for _ in rounds(): if stop: break``):
    whatever goes wrong, they end.
    """
    deadline = time.monotonic() + seconds
    for number in range(most):
        if time.monotonic() >= deadline:
            return
        yield number


def num(value: float) -> str:
    """Format a count or a measure for the report."""
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def per_second(count: int, seconds: float) -> str:
    """Say how many per second, for the report."""
    return f"{num(count)} in {seconds:.2f} s ({num(round(count / seconds))}/s)"


# -- what protected functions do, and what callers saw -------------------------------


class FailureError(Exception):
    """The dependency failed: counted as a failure."""


class ExcludedError(Exception):
    """An answer the breaker is configured to exclude: counted as a success."""


class Abort(BaseException):
    """A non-Exception ending a call, like KeyboardInterrupt: counted as neither."""


class Outcome(enum.IntEnum):
    """How a protected call ends."""

    OK = 0
    FAIL = 1
    EXCLUDED = 2
    ABORT = 3


def act(outcome: Outcome) -> str:
    """Finish protected work as *outcome* says."""
    if outcome is Outcome.OK:
        return "ok"
    if outcome is Outcome.FAIL:
        raise FailureError
    if outcome is Outcome.EXCLUDED:
        raise ExcludedError
    raise Abort


@dataclass
class Tally:
    """How calls ended, as their callers saw them (one per thread or task group)."""

    ok: int = 0
    fail: int = 0
    excluded: int = 0
    rejected: int = 0
    aborted: int = 0
    unexpected: list[str] = field(default_factory=list)

    @property
    def made(self) -> int:
        """Every call made."""
        return (
            self.ok
            + self.fail
            + self.excluded
            + self.rejected
            + self.aborted
            + len(self.unexpected)
        )

    def add(self, other: Tally) -> None:
        """Add *other*'s counts to these."""
        self.ok += other.ok
        self.fail += other.fail
        self.excluded += other.excluded
        self.rejected += other.rejected
        self.aborted += other.aborted
        self.unexpected += other.unexpected

    def record(self, error: BaseException | None) -> None:
        """Count one call that ended with *error* (``None``: it returned)."""
        if error is None:
            self.ok += 1
        elif isinstance(error, CircuitOpenError):
            self.rejected += 1
        elif isinstance(error, FailureError):
            self.fail += 1
        elif isinstance(error, ExcludedError):
            self.excluded += 1
        elif isinstance(error, Abort):
            self.aborted += 1
        else:
            self.unexpected.append(type(error).__name__)

    def call(self, func: Callable[[Outcome], object], outcome: Outcome) -> None:
        """Make one call and count how it ended."""
        try:
            func(outcome)
        except BaseException as error:
            self.record(error)
        else:
            self.ok += 1

    async def call_async(
        self, func: Callable[[Outcome], Awaitable[object]], outcome: Outcome
    ) -> None:
        """Await one call and count how it ended."""
        try:
            await func(outcome)
        except BaseException as error:
            self.record(error)
        else:
            self.ok += 1


def check_counts(log: Log, breaker: CircuitBreaker[..., Any], seen: Tally) -> None:
    """The breaker's counters agree exactly with what its callers saw."""
    metrics = breaker.get_metrics()
    calls = metrics["total_calls"]
    log.equal(
        "no exception but the function's own or CircuitOpenError",
        sorted(set(seen.unexpected)),
        [],
    )
    log.equal(
        "total_calls == total_successes + total_failures",
        calls,
        metrics["total_successes"] + metrics["total_failures"],
    )
    log.equal(
        "total_successes == returned + excluded errors",
        metrics["total_successes"],
        seen.ok + seen.excluded,
    )
    log.equal("total_failures == failures seen", metrics["total_failures"], seen.fail)
    log.equal(
        "total_rejected == rejections seen", metrics["total_rejected"], seen.rejected
    )
    log.equal(
        "total_calls + total_rejected + aborted == calls made",
        calls + metrics["total_rejected"] + seen.aborted,
        seen.made,
    )
    duration = metrics["avg_call_duration_ms"]
    log.expect(
        "avg_call_duration_ms is finite and >= 0",
        math.isfinite(duration) and duration >= 0,
        f"{duration!r}",
    )


# -- threads ------------------------------------------------------------------------


def run_threads(target: Callable[[int], None], count: int = THREADS) -> None:
    """Run ``target(i)`` in *count* threads at once; re-raise what any raised."""
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as error:
            errors.append(error)

    # Daemons: a hung thread fails the storm but cannot keep the process alive.
    threads = [
        threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(count)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + JOIN_TIMEOUT  # for them all, not each
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError(
            f"a storm thread hung (still running after {JOIN_TIMEOUT} s)"
        )
    if errors:
        raise errors[0]


@contextlib.contextmanager
def fine_switching(interval: float = 1e-6) -> Iterator[None]:
    """Switch threads very often, so that calls really interleave."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class Background:
    """
    A daemon thread that runs ``_run`` while a ``with`` block runs.

    Leaving the block sets ``_stop`` and joins the thread, which must end
    within JOIN_TIMEOUT: a thread that hangs fails the storm.
    """

    what = "background thread"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(JOIN_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError(f"the {self.what} hung")

    def _run(self) -> None:
        raise NotImplementedError


class Watcher(Background):
    """
    A thread reading a breaker's metrics while a storm runs.

    Each snapshot must be consistent (calls == successes + failures) and
    totals must never go down; it also records which states it saw, and how
    often the circuit closed again after being open or half-open.
    """

    def __init__(self, breaker: CircuitBreaker[..., Any]) -> None:
        self.breaker = breaker
        self.snapshots = 0
        self.inconsistent: list[tuple[int, int, int]] = []
        self.decreases = 0
        self.states: set[str] = set()
        self.recoveries = 0
        super().__init__()

    what = "watcher thread"

    def _run(self) -> None:
        last = (0, 0, 0, 0)
        previous_state = "closed"
        for _ in rounds():
            if self._stop.is_set():
                break
            time.sleep(0)  # a snapshot as often as the other threads let it
            metrics = self.breaker.get_metrics()
            self.snapshots += 1
            calls = metrics["total_calls"]
            successes, failures = metrics["total_successes"], metrics["total_failures"]
            if calls != successes + failures:
                self.inconsistent.append((calls, successes, failures))
            now = (calls, successes, failures, metrics["total_rejected"])
            if any(b < a for a, b in zip(last, now, strict=True)):
                self.decreases += 1
            last = now
            state = metrics["state"]
            self.states.add(state)
            if state == "closed" and previous_state != "closed":
                self.recoveries += 1
            previous_state = state

    def report(self, log: Log) -> None:
        """Record what the watcher saw, and its invariants."""
        log.figure(
            f"watcher: {num(self.snapshots)} live snapshots; states seen"
            f" {sorted(self.states)}; closed again {num(self.recoveries)} times"
        )
        first = self.inconsistent[0] if self.inconsistent else None
        log.expect(
            "every live snapshot has total_calls == total_successes + total_failures",
            not self.inconsistent,
            f"{len(self.inconsistent)} of {num(self.snapshots)} were not"
            f" (first: calls={first[0]}, successes={first[1]}, failures={first[2]})"
            if first
            else f"{num(self.snapshots)} snapshots",
        )
        log.equal("live totals never decrease", self.decreases, 0)


# -- scheduling delay -----------------------------------------------------------------


class Lateness(Background):
    """
    A thread measuring, while a storm runs, how late this process runs a thread.

    It naps 1 ms again and again; each round's overrun (from one wake-up to the
    next, less the nap) is how long a thread that was ready waited to run:
    behind busy threads for the GIL (a switch interval each), for a core on a
    loaded machine, and through every pause that stops all threads (the
    cyclic garbage collector). Storms on the real clock judge elapsed times
    against these figures, measured in the same run, instead of fixed
    margins: a busy machine makes both late alike.
    """

    NAP: Final = 0.001

    def __init__(self) -> None:
        self.overruns: list[float] = []
        super().__init__()

    what = "lateness thread"

    def _run(self) -> None:
        overruns = self.overruns
        last = time.monotonic()
        for _ in rounds():
            if self._stop.is_set():
                break
            time.sleep(self.NAP)
            now = time.monotonic()
            overruns.append(max(0.0, now - last - self.NAP))
            last = now

    @property
    def longest(self) -> float:
        """The longest a ready thread waited (seconds)."""
        return max(self.overruns, default=0.0)

    @property
    def median(self) -> float:
        """How long a ready thread typically waited (seconds)."""
        return statistics.median(self.overruns) if self.overruns else 0.0

    def quantile(self, fraction: float) -> float:
        """The overrun that *fraction* of the rounds did not exceed (seconds)."""
        if not self.overruns:
            return 0.0
        ordered = sorted(self.overruns)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def describe(self) -> str:
        """The figures, for the report."""
        return (
            f"scheduling delay ({num(len(self.overruns))} naps of 1 ms):"
            f" median {self.median * 1000:.1f} ms, p99 {self.quantile(0.99) * 1000:.1f}"
            f" ms, longest {self.longest * 1000:.1f} ms"
        )


# -- probe slots ----------------------------------------------------------------------


def _hold(breaker: CircuitBreaker[..., Any]) -> Generator[None, None, None]:
    with breaker:
        yield


def probe_slots(
    breaker: CircuitBreaker[..., Any], wait_out_recovery: Callable[[], object]
) -> int:
    """
    Open the circuit, wait out the timeout, and count the probes it admits.

    Each probe is a ``with`` block held open in its own context (as concurrent
    callers' would be), so no probe finishes while counting. A lost slot
    shows as fewer probes than ``half_open_max_calls``, a doubled one as more.
    """
    breaker.trip()
    wait_out_recovery()
    held: list[tuple[contextvars.Context, Generator[None, None, None]]] = []
    try:
        for _ in range(breaker.config.half_open_max_calls + 5):
            context = contextvars.copy_context()
            block = _hold(breaker)
            try:
                context.run(next, block)
            except CircuitOpenError:
                break
            held.append((context, block))
    finally:
        for context, block in held:
            context.run(block.close)
    return len(held)


def check_probe_slots(
    log: Log, breaker: CircuitBreaker[..., Any], wait_out_recovery: Callable[[], object]
) -> None:
    """After the storm, exactly ``half_open_max_calls`` probe slots are free."""
    log.equal(
        "no probe slot lost or doubled (probes admitted after the storm)",
        probe_slots(breaker, wait_out_recovery),
        breaker.config.half_open_max_calls,
    )


def recover(
    breaker: CircuitBreaker[..., Any],
    call: Callable[[], object],
    wait_out_recovery: Callable[[], object],
    attempts: int = 1000,
) -> bool:
    """Make healthy calls until the circuit is closed; whether it closed."""
    for _ in range(attempts):
        if breaker.state is CircuitState.CLOSED:
            return True
        try:
            call()
        except CircuitOpenError:
            wait_out_recovery()
    return breaker.state is CircuitState.CLOSED


def real_wait(seconds: float) -> Callable[[], None]:
    """A ``wait_out_recovery`` for breakers on the real clock."""
    return lambda: time.sleep(seconds)
