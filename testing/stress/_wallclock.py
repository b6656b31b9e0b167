"""Wall clock: time-machine jumps of a day either way change nothing."""

from __future__ import annotations

import datetime as dt
import statistics
import threading
import time
from typing import Final

from aiobreakers import (
    BreakerConfig,
    CallRejected,
    CallSucceeded,
    CircuitBreaker,
    Event,
    StateChanged,
)

from ._core import (
    ExcludedError,
    Log,
    Mode,
    Outcome,
    Tally,
    Watcher,
    check_counts,
    num,
    run_threads,
    storm,
)
from ._threads import entry_points

RECOVERY: Final = 0.05  # seconds open, on the real monotonic clock
ROUNDING: Final = 1e-9  # (now + timeout) - now may exceed timeout by an ulp
SLACK: Final = 0.5  # seconds an open spell may overrun (a busy 2-core machine)
DAY: Final = dt.timedelta(days=1)
EPOCH: Final = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
# Healthy calls with a burst of failures that trips the circuit.
PATTERN: Final = [Outcome.OK] * 40 + [Outcome.FAIL] * 10 + [Outcome.EXCLUDED] * 2


class TimedSink:
    """Records events with the monotonic time they arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            self.events.append((time.monotonic(), event))


def open_spells(sink: TimedSink) -> list[float]:
    """How long each open spell lasted until the next state change."""
    spells: list[float] = []
    opened: float | None = None
    for when, event in sink.events:
        if isinstance(event, StateChanged):
            if opened is not None:
                spells.append(when - opened)
            opened = when if event.new == "open" else None
    return spells


@storm("wallclock", "time-machine jumps of +-1 day during a run change nothing")
def wallclock(mode: Mode, log: Log) -> None:  # noqa: PLR0915 - one storm, many checks
    import time_machine  # noqa: PLC0415 - only this storm needs it

    seconds = mode.pick(1.0, 10.0)
    config = BreakerConfig(
        failure_threshold=5,
        success_threshold=2,
        recovery_timeout=RECOVERY,
        half_open_max_calls=2,
        excluded_exceptions=(ExcludedError,),
    )
    sink = TimedSink()
    watched = CircuitBreaker("wall-sink", config, sink=sink)
    quiet = CircuitBreaker("wall-quiet", config)
    jumps = 0
    furthest = 0.0
    stop = threading.Event()
    with time_machine.travel(EPOCH, tick=True) as traveller:

        def jump() -> None:
            nonlocal jumps, furthest
            direction = 1
            while not stop.wait(0.001):
                traveller.shift(DAY * direction)
                jumps += 1
                furthest = max(furthest, abs(time.time() - EPOCH.timestamp()))
                direction = -direction if jumps % 2 == 0 else direction

        jumper = threading.Thread(target=jump)
        jumper.start()
        tallies = {watched.name: Tally(), quiet.name: Tally()}

        def worker(index: int) -> None:
            breaker = watched if index % 2 else quiet
            call = entry_points(breaker)[index % 3]
            tally = tallies[breaker.name]
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for outcome in PATTERN:
                    tally.call(call, outcome)

        try:
            with Watcher(quiet) as watcher:
                run_threads(worker, 4)
        finally:
            stop.set()
            jumper.join()
    spells = open_spells(sink)
    rejections = [e for _, e in sink.events if isinstance(e, CallRejected)]
    durations = [e.duration for _, e in sink.events if isinstance(e, CallSucceeded)]
    log.figure(
        f"{seconds:.0f} s, {num(jumps)} jumps of a day (wall clock up to"
        f" {furthest / 86400:.1f} days off); {num(len(spells))} open spells,"
        f" {num(sum(t.made for t in tallies.values()))} calls"
    )
    log.at_least("the wall clock really jumped (days)", furthest / 86400, 0.99)
    log.at_least("the circuit opened and recovered", len(spells), 3)
    # A jump taken for elapsed time would end spells at once (forward) or
    # stall them for a day (backward). Scheduling on a busy machine blurs a
    # spell's timestamps (a thread may wait for the GIL between reading the
    # clock and its lock, or before its sink sees the event), so judge the
    # bulk of them: most at least half the timeout, the median about it.
    short = sum(spell < RECOVERY / 2 for spell in spells)
    log.at_most(
        "open spells shorter than half the timeout (at most 10%)",
        short,
        len(spells) / 10,
    )
    middle = statistics.median(spells) if spells else 0.0
    log.expect(
        "open spells last recovery_timeout (median, s)",
        RECOVERY * 0.8 <= middle <= RECOVERY + SLACK,
        f"{middle:.4f} (timeout {RECOVERY})",
    )
    log.at_most(
        "no open spell stalled (longest, s)", max(spells, default=0), RECOVERY + SLACK
    )
    log.expect(
        # A day's jump would show as ~86,400 s. Under load retry_after can
        # exceed the timeout a little: it is computed from the clock read
        # before the lock, and another thread may trip it in between.
        "every rejection's retry_after within [0, recovery_timeout + slack]",
        all(0 <= e.retry_after <= RECOVERY + SLACK for e in rejections),
        f"{num(len(rejections))} rejections, largest"
        f" {max((e.retry_after for e in rejections), default=0)!r}",
    )
    log.expect(
        "every call's duration within [0, 1 s)",
        all(0 <= d < 1 for d in durations),
        f"{num(len(durations))} calls, longest {max(durations, default=0):.4f} s",
    )
    for breaker in (watched, quiet):
        check_counts(log, breaker, tallies[breaker.name])
        remaining = breaker.get_metrics()["time_until_recovery"]
        log.expect(
            f"{breaker.name}: time_until_recovery within [0, recovery_timeout]",
            0 <= remaining <= RECOVERY + ROUNDING,
            f"{remaining!r}",
        )
    watcher.report(log)
