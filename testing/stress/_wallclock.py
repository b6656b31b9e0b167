"""Wall clock: time-machine jumps of a day either way change nothing."""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
import threading
import time
from typing import Final

from aiobreakers import (
    BreakerConfig,
    CallRejected,
    CallSucceeded,
    CircuitBreaker,
    StateChanged,
)
from aiobreakers.testing import Spy

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


def open_spells(spy: Spy) -> list[float]:
    """
    How long each open spell lasted until the next state change.

    Timed by the events' own ``at`` (the breaker's clock when the state
    changed), in that order: sinks see events from many threads, not
    necessarily in the order the changes happened.
    """
    changes = sorted(
        (event for event in spy.events if isinstance(event, StateChanged)),
        key=lambda event: event.at,
    )
    return [
        later.at - change.at
        for change, later in itertools.pairwise(changes)
        if change.new == "open"
    ]


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
    sink = Spy()
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
    rejections = [e for e in sink.events if isinstance(e, CallRejected)]
    durations = [e.duration for e in sink.events if isinstance(e, CallSucceeded)]
    log.figure(
        f"{seconds:.0f} s, {num(jumps)} jumps of a day (wall clock up to"
        f" {furthest / 86400:.1f} days off); {num(len(spells))} open spells,"
        f" {num(sum(t.made for t in tallies.values()))} calls"
    )
    log.at_least("the wall clock really jumped (days)", furthest / 86400, 0.99)
    log.at_least("the circuit opened and recovered", len(spells), 3)
    # A jump taken for elapsed time would end spells at once (forward) or
    # stall them for a day (backward). By the breaker's own clock an open
    # spell ends only once recovery_timeout has passed.
    shortest = min(spells) if spells else RECOVERY
    log.expect(
        "no open spell shorter than recovery_timeout (by the events' clock)",
        shortest >= RECOVERY - 1e-9,  # float rounding of until - at
        f"shortest {shortest:.4f} s (timeout {RECOVERY})",
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
