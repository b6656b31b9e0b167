"""Tasks: ten thousand asyncio tasks against a half-open breaker, with cancellations."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any, Final

from aiobreakers import BreakerConfig, CircuitBreaker, CircuitOpenError, CircuitState
from aiobreakers.testing import FakeClock

from ._core import (
    JOIN_TIMEOUT,
    Log,
    Mode,
    Tally,
    check_counts,
    check_probe_slots,
    num,
    rounds,
    storm,
)

RECOVERY: Final = 1.0
MAX_PROBES: Final = 8


class DependencyDownError(Exception):
    """The protected dependency is still failing."""


@dataclass
class Dependency:
    """The protected coroutine, measuring the probes in flight from inside."""

    breaker: CircuitBreaker[..., Any]
    rng: random.Random
    down: bool = True
    probes: int = 0
    max_probes: int = 0
    probe_runs: int = 0
    probes_cancelled: int = 0
    probing: set[asyncio.Task[Any]] = field(default_factory=set)

    async def __call__(self) -> str:
        # The body starts in the same step as its admission, so the state
        # read here is the state that admitted it.
        probe = self.breaker.state is CircuitState.HALF_OPEN
        task = asyncio.current_task()
        if probe and task is not None:
            self.probing.add(task)
        if probe:
            self.probes += 1
            self.probe_runs += 1
            self.max_probes = max(self.max_probes, self.probes)
        try:
            for _ in range(self.rng.randint(0, 3)):
                await asyncio.sleep(0)  # a point where cancellation may land
            if self.down:
                raise DependencyDownError
        except asyncio.CancelledError:
            self.probes_cancelled += probe
            raise
        finally:
            if probe:
                self.probes -= 1
                if task is not None:
                    self.probing.discard(task)
        return "ok"


@dataclass
class Crowd:
    """The tasks calling through the breaker, and what they saw."""

    call: object
    rng: random.Random
    seen: Tally = field(default_factory=Tally)
    cancelled_in_call: int = 0
    stop: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def caller(self) -> None:
        """Call again and again until told to stop."""
        seen = self.seen
        call = self.call
        assert callable(call)
        for _ in rounds():
            if self.stop:
                break
            try:
                await call()
            except CircuitOpenError:
                seen.rejected += 1
            except DependencyDownError:
                seen.fail += 1
            except asyncio.CancelledError:
                # Cancelled inside the protected call: counted as neither.
                seen.aborted += 1
                raise
            except BaseException as error:
                seen.unexpected.append(type(error).__name__)
            else:
                seen.ok += 1
            for _ in range(self.rng.randint(1, 4)):
                await asyncio.sleep(0)

    def start(self, count: int) -> None:
        for _ in range(count):
            task = asyncio.create_task(self.caller())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def cancel_some(self, count: int, probing: set[asyncio.Task[Any]]) -> None:
        """Cancel *count* tasks at whatever point they are, and a probe if any."""
        victims = self.rng.sample(sorted(self.tasks, key=id), count)
        if probing:
            victims.append(self.rng.choice(sorted(probing, key=id)))
        for task in victims:
            task.cancel()
        self.start(len(victims))


async def settle(rng: random.Random) -> None:
    for _ in range(rng.randint(1, 5)):
        await asyncio.sleep(0)


async def storm_async(log: Log, tasks: int, steps: int) -> None:
    rng = random.Random(20240611)  # noqa: S311 - a reproducible schedule
    clock = FakeClock()
    config = BreakerConfig(
        failure_threshold=1,
        success_threshold=3 * MAX_PROBES,
        recovery_timeout=RECOVERY,
        half_open_max_calls=MAX_PROBES,
    )
    breaker = CircuitBreaker("tasks", config, clock=clock)
    dependency = Dependency(breaker, rng)
    crowd = Crowd(breaker(dependency), rng)
    breaker.trip()
    clock.advance(RECOVERY)
    crowd.start(tasks)
    start = time.perf_counter()
    # The dependency is down: probes fail and re-open the circuit; time moves
    # on, so it half-opens again; tasks are cancelled at random points.
    for _ in range(steps):
        await settle(rng)
        clock.advance(rng.choice((0.0, 0.5, RECOVERY)))
        await asyncio.sleep(0)  # callers run: a half-open circuit admits probes
        crowd.cancel_some(rng.randint(0, tasks // 100), dependency.probing)
    failing_probes = dependency.probe_runs
    # The dependency recovers: the circuit must close, cancellations go on.
    dependency.down = False
    recovery_steps = 0
    while breaker.state is not CircuitState.CLOSED and recovery_steps < 1000:
        recovery_steps += 1
        await settle(rng)
        clock.advance(RECOVERY)
        crowd.cancel_some(rng.randint(0, tasks // 100), dependency.probing)
    closed = breaker.state is CircuitState.CLOSED
    for _ in range(5):
        await settle(rng)
    crowd.stop = True
    # Each caller ends at its next turn; a hung one fails the storm.
    await asyncio.wait_for(
        asyncio.gather(*crowd.tasks, return_exceptions=True), JOIN_TIMEOUT
    )
    elapsed = time.perf_counter() - start
    seen = crowd.seen
    metrics = breaker.get_metrics()
    log.figure(
        f"{num(tasks)} tasks at once, {num(steps)} steps down then"
        f" {num(recovery_steps)} up: {num(seen.made)} calls in {elapsed:.2f} s;"
        f" {num(failing_probes)} failing probes, {num(metrics['total_trips'])}"
        f" trips, {num(seen.aborted)} calls cancelled inside the breaker"
        f" ({num(dependency.probes_cancelled)} of them probes)"
    )
    log.at_most(
        "probes in flight (measured inside the function) <= half_open_max_calls",
        dependency.max_probes,
        MAX_PROBES,
    )
    log.equal(
        "the probe limit was reached (no slot lost mid-run)",
        dependency.max_probes,
        MAX_PROBES,
    )
    log.expect(
        "the breaker closed once the dependency recovered",
        closed,
        f"after {recovery_steps} steps",
    )
    log.at_least("probes were cancelled mid-call", dependency.probes_cancelled, 1)
    check_counts(log, breaker, seen)
    check_probe_slots(log, breaker, lambda: clock.advance(RECOVERY))


@storm(
    "tasks",
    "10^4 asyncio tasks vs a half-open breaker: probe limit, cancellation, recovery",
)
def tasks(mode: Mode, log: Log) -> None:
    asyncio.run(storm_async(log, 10_000, mode.pick(20, 200)))
