"""Threads: eight threads through one breaker that trips and recovers repeatedly."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aiobreakers import BreakerConfig, CircuitBreaker, Event, set_defaults
from aiobreakers.testing import FakeClock

from ._core import (
    THREADS,
    ExcludedError,
    Log,
    Mode,
    Outcome,
    Tally,
    Watcher,
    act,
    check_counts,
    check_probe_slots,
    fine_switching,
    num,
    per_second,
    real_wait,
    recover,
    run_threads,
    storm,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

REAL_RECOVERY: Final = 0.0005  # seconds open on the real clock
FAKE_RECOVERY: Final = 0.01  # seconds open on the fake clock
FAKE_TICK: Final = 1e-4  # virtual seconds each thread adds every few calls
BLOCK: Final = 50  # calls of one kind in a row, so failures come in bursts


def outcomes(seed: int, count: int) -> list[Outcome]:
    """Mixed outcomes for one thread: mostly healthy, with bursts of failures."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule
    result: list[Outcome] = []
    while len(result) < count:
        failing = rng.random() < 0.05
        for _ in range(BLOCK):
            r = rng.random()
            if failing:
                result.append(Outcome.FAIL if r < 0.9 else Outcome.OK)
            elif r < 0.02:
                result.append(Outcome.FAIL)
            elif r < 0.06:
                result.append(Outcome.EXCLUDED)
            elif r < 0.07:
                result.append(Outcome.ABORT)
            else:
                result.append(Outcome.OK)
    return result[:count]


class CountingSink:
    """An event sink counting events by type (emit is called from every thread)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.opened = 0
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            self.counts[type(event).__name__] += 1
            if getattr(event, "new", None) == "open":
                self.opened += 1


@dataclass(frozen=True)
class Variant:
    """One way of running the storm: which clock, and whether a sink listens."""

    label: str
    clock: str  # "system", "fake" (injected) or "fake-default" (installed)
    sink: bool = False


VARIANTS: Final = (
    Variant("system clock, nobody listening: lock-free successes/rejections", "system"),
    Variant("fake clock as the process default: every call timed", "fake-default"),
    Variant("fake clock injected: every call timed, failures under the lock", "fake"),
    Variant(
        "system clock and a sink: the events match the counters", "system", sink=True
    ),
)


@dataclass
class Setup:
    """A variant's breaker, how time moves, and its sink."""

    breaker: CircuitBreaker[..., Any]
    tick: Callable[[], object] | None
    wait_out_recovery: Callable[[], object]
    sink: CountingSink | None


@contextlib.contextmanager
def prepare(variant: Variant) -> Iterator[Setup]:
    """Build the variant's breaker (and install its default clock meanwhile)."""
    fake = FakeClock()
    recovery = REAL_RECOVERY if variant.clock == "system" else FAKE_RECOVERY
    config = BreakerConfig(
        failure_threshold=5,
        success_threshold=2,
        recovery_timeout=recovery,
        half_open_max_calls=2,
        excluded_exceptions=(ExcludedError,),
    )
    sink = CountingSink() if variant.sink else None
    injected = fake if variant.clock == "fake" else None
    breaker = CircuitBreaker(variant.label, config, clock=injected, sink=sink)
    if variant.clock == "system":
        yield Setup(breaker, None, real_wait(recovery * 1.5), sink)
        return
    previous = set_defaults(clock=fake) if variant.clock == "fake-default" else None
    try:
        yield Setup(
            breaker,
            lambda: fake.advance(FAKE_TICK),
            lambda: fake.advance(recovery),
            sink,
        )
    finally:
        if previous is not None:
            previous.install()


def entry_points(
    breaker: CircuitBreaker[..., Any],
) -> list[Callable[[Outcome], object]]:
    """The ways a thread calls through the breaker: decorator, call_sync, with."""
    decorated = breaker(act)

    def by_call_sync(outcome: Outcome) -> object:
        return breaker.call_sync(act, outcome)

    def by_with(outcome: Outcome) -> object:
        with breaker:
            return act(outcome)

    return [decorated, by_call_sync, by_with]


def hammer(
    breaker: CircuitBreaker[..., Any],
    schedules: list[list[Outcome]],
    tick: Callable[[], object] | None,
) -> Tally:
    """Run each schedule in its own thread; return what the callers saw."""
    calls = entry_points(breaker)
    tallies = [Tally() for _ in schedules]

    def worker(index: int) -> None:
        call = calls[index % len(calls)]
        tally = tallies[index]
        for number, outcome in enumerate(schedules[index]):
            if tick is not None and number & 3 == 0:
                tick()
            tally.call(call, outcome)

    run_threads(worker, len(schedules))
    seen = Tally()
    for tally in tallies:
        seen.add(tally)
    return seen


def run_variant(log: Log, variant: Variant, total: int, seed: int) -> None:
    """Hammer one variant's breaker and check every invariant."""
    log.section(variant.label)
    schedules = [outcomes(seed + index, total // THREADS) for index in range(THREADS)]
    with prepare(variant) as setup, fine_switching():
        breaker = setup.breaker
        with Watcher(breaker) as watcher:
            start = time.perf_counter()
            seen = hammer(breaker, schedules, setup.tick)
            elapsed = time.perf_counter() - start
        metrics = breaker.get_metrics()
        log.figure(
            f"{THREADS} threads, switch interval 1 us:"
            f" {per_second(seen.made, elapsed)};"
            f" {num(metrics['total_trips'])} trips, {num(metrics['total_rejected'])}"
            f" rejected, {num(seen.aborted)} aborted by a BaseException"
        )
        watcher.report(log)
        check_counts(log, breaker, seen)
        log.at_least("it tripped repeatedly (total_trips)", metrics["total_trips"], 3)
        log.at_least("it closed again repeatedly (watcher)", watcher.recoveries, 2)
        if setup.sink is not None:
            counts = setup.sink.counts
            log.equal(
                "CallSucceeded events == total_successes",
                counts["CallSucceeded"],
                metrics["total_successes"],
            )
            log.equal(
                "CallFailed events == total_failures",
                counts["CallFailed"],
                metrics["total_failures"],
            )
            log.equal(
                "CallRejected events == total_rejected",
                counts["CallRejected"],
                metrics["total_rejected"],
            )
            log.equal(
                "StateChanged to open == total_trips",
                setup.sink.opened,
                metrics["total_trips"],
            )
        ok = entry_points(breaker)[0]
        log.expect(
            "it closes once calls succeed",
            recover(breaker, lambda: ok(Outcome.OK), setup.wait_out_recovery),
        )
        check_probe_slots(log, breaker, setup.wait_out_recovery)


@storm(
    "threads",
    "8 threads, mixed outcomes, one breaker tripping and recovering: exact counts",
)
def threads(mode: Mode, log: Log) -> None:
    total = mode.pick(200_000, 1_000_000)
    for seed, variant in enumerate(VARIANTS):
        run_variant(log, variant, total, seed * 1000)
