"""Retry storms: many callers retrying a failing dependency on a fake clock."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import defaultdict
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from aiobreakers import (
    BackoffStrategy,
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    RetryConfig,
    RetryPolicy,
    SystemRandom,
)
from aiobreakers.testing import FakeClock, RetrySpy

from ._core import JOIN_TIMEOUT, THREADS, Log, Mode, num, run_threads, storm

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_RETRIES: Final = 4
BASE_DELAY: Final = 0.1
MAX_DELAY: Final = 2.0

caller_id: ContextVar[int] = ContextVar("caller_id")


class AttemptError(Exception):
    """Attempt number *attempt* of caller *caller* failed (retryable)."""

    def __init__(self, caller: int, attempt: int) -> None:
        super().__init__(caller, attempt)
        self.caller = caller
        self.attempt = attempt


class FatalError(AttemptError):
    """A failure the policies must not retry."""


@dataclass(frozen=True)
class Script:
    """What the dependency does to one caller's attempts."""

    fails: int  # attempts that fail before one succeeds
    fatal_at: int | None  # the attempt that raises FatalError
    cancel_sleep_at: int | None  # the caller is cancelled in this sleep
    cancel_attempt_at: int | None  # ... or inside this attempt
    through_open_breaker: bool  # the call goes through an open breaker

    def expected(self) -> tuple[str, int]:
        """The outcome and number of attempts, if nothing is cancelled."""
        if self.through_open_breaker:
            return "rejected", 0
        for attempt in range(1, MAX_RETRIES + 2):
            if self.fatal_at == attempt:
                return "fatal", attempt
            if attempt > self.fails:
                return "ok", attempt
        return "exhausted", MAX_RETRIES + 1


def scripts(count: int, seed: int, *, cancel: bool) -> list[Script]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule

    def sometimes(p: float, low: int, high: int) -> int | None:
        return rng.randint(low, high) if rng.random() < p else None

    return [
        Script(
            fails=rng.randint(0, MAX_RETRIES + 2),
            fatal_at=sometimes(0.1, 1, MAX_RETRIES + 1),
            cancel_sleep_at=sometimes(0.05, 1, MAX_RETRIES) if cancel else None,
            cancel_attempt_at=sometimes(0.03, 1, MAX_RETRIES + 1) if cancel else None,
            through_open_breaker=rng.random() < 0.05,
        )
        for _ in range(count)
    ]


@dataclass
class Ledger:
    """What the dependency and the sleeper saw, per caller; a Sleeper itself."""

    scripts: list[Script]
    clock: FakeClock
    attempts: list[int] = field(init=False)
    sleeps: defaultdict[int, list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )
    outcomes: dict[int, str] = field(default_factory=dict)
    elapsed: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.attempts = [0] * len(self.scripts)

    async def sleep_async(self, seconds: float) -> None:
        caller = caller_id.get()
        self.sleeps[caller].append(seconds)
        task = asyncio.current_task()
        if task is not None and len(self.sleeps[caller]) == (
            self.scripts[caller].cancel_sleep_at
        ):
            # Cancelled from outside while it sleeps, as a timeout would.
            asyncio.get_running_loop().call_soon(task.cancel)
        try:
            await self.clock.sleep_async(seconds)
        except asyncio.CancelledError:
            self.outcomes[caller] = "cancelled in sleep"
            raise

    def sleep_sync(self, seconds: float) -> None:
        self.sleeps[caller_id.get()].append(seconds)
        self.clock.sleep_sync(seconds)

    def attempt(self) -> None:
        """Count one attempt of the current caller; fail it as scripted."""
        caller = caller_id.get()
        self.attempts[caller] += 1
        number = self.attempts[caller]
        script = self.scripts[caller]
        if script.fatal_at == number:
            raise FatalError(caller, number)
        if number <= script.fails:
            raise AttemptError(caller, number)

    async def attempt_async(self) -> str:
        caller = caller_id.get()
        task = asyncio.current_task()
        if task is not None and self.scripts[caller].cancel_attempt_at == (
            self.attempts[caller] + 1
        ):
            self.attempts[caller] += 1
            task.cancel()
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                self.outcomes[caller] = "cancelled in attempt"
                raise
        await asyncio.sleep(0)
        self.attempt()
        return "ok"

    def attempt_sync(self) -> str:
        self.attempt()
        return "ok"


def ended(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, FatalError):
        return "fatal"
    if isinstance(error, AttemptError):
        return "exhausted"
    if isinstance(error, CircuitOpenError):
        return "rejected"
    return f"unexpected {type(error).__name__}"


@dataclass
class Rig:
    """One policy per backoff strategy, each with its spy, over one ledger."""

    ledger: Ledger
    policies: list[RetryPolicy]
    spies: list[RetrySpy]
    breaker: CircuitBreaker[..., Any]


def rig(count: int, seed: int, *, cancel: bool) -> Rig:
    clock = FakeClock()
    ledger = Ledger(scripts(count, seed, cancel=cancel), clock)
    spies = [RetrySpy() for _ in BackoffStrategy]
    policies = [
        RetryPolicy(
            strategy.value,
            RetryConfig(
                max_retries=MAX_RETRIES,
                base_delay=BASE_DELAY,
                max_delay=MAX_DELAY,
                strategy=strategy,
                non_retryable_exceptions=(FatalError,),
            ),
            clock=clock,
            sleeper=ledger,
            random=SystemRandom(seed + index),
            sink=spy,
        )
        for index, (strategy, spy) in enumerate(
            zip(BackoffStrategy, spies, strict=True)
        )
    ]
    breaker = CircuitBreaker("down", BreakerConfig(recovery_timeout=1e9), clock=clock)
    breaker.trip()
    return Rig(ledger, policies, spies, breaker)


def bounds(
    strategy: BackoffStrategy, retry: int, previous: float
) -> tuple[float, float]:
    """The range the delay before retry *retry* must fall in."""
    base, high = BASE_DELAY, MAX_DELAY
    cap = min(high, base * 2.0 ** (retry - 1))
    if strategy is BackoffStrategy.EXPONENTIAL:
        return cap, cap
    if strategy is BackoffStrategy.FULL_JITTER:
        return 0.0, cap
    if strategy is BackoffStrategy.EQUAL_JITTER:
        return cap / 2, cap
    return min(high, base), min(high, 3.0 * previous)


def account(log: Log, rig: Rig, *, exact_time: bool) -> None:  # noqa: C901, PLR0912, PLR0915 - one ledger, many checks
    """Every attempt and every delay is accounted for, per caller and in total."""
    ledger = rig.ledger
    scheduled: defaultdict[int, list[Any]] = defaultdict(list)
    exhausted: dict[int, Any] = {}
    strategy_of: dict[int, BackoffStrategy] = {}
    for strategy, spy in zip(BackoffStrategy, rig.spies, strict=True):
        for event in spy.retries(strategy.value):
            caller = event.error.caller if isinstance(event.error, AttemptError) else -1
            scheduled[caller].append(event)
            strategy_of[caller] = strategy
        for gave_up in spy.exhausted(strategy.value):
            if isinstance(gave_up.error, AttemptError):
                exhausted[gave_up.error.caller] = gave_up
    wrong: defaultdict[str, list[int]] = defaultdict(list)
    outcomes: defaultdict[str, int] = defaultdict(int)
    for caller, script in enumerate(ledger.scripts):
        outcome = ledger.outcomes[caller]
        outcomes[outcome] += 1
        events = scheduled[caller]
        attempts = ledger.attempts[caller]
        numbers = [event.attempt for event in events]
        if numbers != list(range(1, len(events) + 1)) or any(
            event.error.attempt != event.attempt for event in events
        ):
            wrong["retries numbered 1, 2, ... after attempts 1, 2, ..."].append(caller)
        cancelled_in_sleep = outcome == "cancelled in sleep"
        if attempts != len(events) + (0 if cancelled_in_sleep or not attempts else 1):
            wrong[
                "attempts == retries scheduled + 1 (+ 0 if cancelled mid-sleep)"
            ].append(caller)
        if ledger.sleeps[caller] != [
            event.delay for event in events if event.delay > 0
        ]:
            wrong["each non-zero delay slept once, in order"].append(caller)
        previous = BASE_DELAY
        for event in events:
            low, high = bounds(strategy_of[caller], event.attempt, previous)
            if not low - 1e-12 <= event.delay <= high + 1e-12:
                wrong["each delay within its strategy's range"].append(caller)
            previous = event.delay
        if not outcome.startswith("cancelled"):
            if (outcome, attempts) != script.expected():
                wrong["outcome and attempts as scripted"].append(caller)
            if (outcome == "exhausted") != (caller in exhausted):
                wrong["RetryExhausted exactly for callers out of retries"].append(
                    caller
                )
        if caller in exhausted:
            event = exhausted[caller]
            if event.attempts != MAX_RETRIES + 1:
                wrong["RetryExhausted.attempts == max_retries + 1"].append(caller)
            if exact_time and not math.isclose(
                event.elapsed, sum(ledger.sleeps[caller]), rel_tol=1e-9, abs_tol=1e-9
            ):
                wrong["RetryExhausted.elapsed == the delays slept"].append(caller)
        if exact_time and outcome in {"ok", "exhausted", "fatal"}:  # noqa: SIM102
            if not math.isclose(
                ledger.elapsed[caller],
                sum(ledger.sleeps[caller]),
                rel_tol=1e-9,
                abs_tol=1e-9,
            ):
                wrong["virtual time per call == its delays"].append(caller)
    log.figure(
        f"{num(len(ledger.scripts))} callers over {len(rig.policies)} policies:"
        f" {num(sum(ledger.attempts))} attempts,"
        f" {num(sum(len(e) for e in scheduled.values()))} retries,"
        f" {num(sum(len(s) for s in ledger.sleeps.values()))} sleeps; outcomes"
        f" {dict(sorted(outcomes.items()))}"
    )
    for what in (
        "retries numbered 1, 2, ... after attempts 1, 2, ...",
        "attempts == retries scheduled + 1 (+ 0 if cancelled mid-sleep)",
        "each non-zero delay slept once, in order",
        "each delay within its strategy's range",
        "outcome and attempts as scripted",
        "RetryExhausted exactly for callers out of retries",
        "RetryExhausted.attempts == max_retries + 1",
        *(
            (
                "RetryExhausted.elapsed == the delays slept",
                "virtual time per call == its delays",
            )
            if exact_time
            else ()
        ),
    ):
        callers = wrong.get(what, [])
        log.expect(
            f"per caller: {what}",
            not callers,
            f"wrong for {len(callers)} callers, first {callers[:5]}" if callers else "",
        )
    log.equal(
        "no unexpected outcome", [o for o in outcomes if o.startswith("unexpected")], []
    )
    log.equal("CircuitOpenError never retried", scheduled.get(-1, []), [])
    metrics = [policy.get_metrics() for policy in rig.policies]
    log.equal(
        "sum of total_retries == RetryScheduled events",
        sum(m["total_retries"] for m in metrics),
        sum(len(events) for events in scheduled.values()),
    )
    log.equal(
        "sum of total_exhausted == RetryExhausted events == exhausted callers",
        (sum(m["total_exhausted"] for m in metrics), len(exhausted)),
        (outcomes["exhausted"], outcomes["exhausted"]),
    )
    log.equal(
        "sum of total_successes == callers that got a result",
        sum(m["total_successes"] for m in metrics),
        outcomes["ok"],
    )
    log.equal(
        "sum of total_failures == exhausted + non-retryable + rejected callers",
        sum(m["total_failures"] for m in metrics),
        outcomes["exhausted"] + outcomes["fatal"] + outcomes["rejected"],
    )
    log.equal(
        "cancelled calls counted in neither: total_calls == finished callers",
        sum(m["total_calls"] for m in metrics),
        len(ledger.scripts)
        - outcomes["cancelled in sleep"]
        - outcomes["cancelled in attempt"],
    )
    slept = sorted(ledger.clock.sleeps)
    asked = sorted(d for sleeps in ledger.sleeps.values() for d in sleeps)
    log.expect(
        "the fake clock slept exactly the ledger's delays",
        slept == asked,
        f"{num(len(slept))} sleeps, {sum(slept):,.3f} s vs"
        f" {num(len(asked))} sleeps, {sum(asked):,.3f} s",
    )


def protected_for(rig: Rig, caller: int, func: Callable[[], Any]) -> Callable[[], Any]:
    """The caller's retrying function: its policy, maybe over the open breaker."""
    policy = rig.policies[caller % len(rig.policies)]
    if rig.ledger.scripts[caller].through_open_breaker:
        func = rig.breaker(func)
    return policy(func)


async def run_tasks(rig: Rig) -> None:
    ledger = rig.ledger

    async def one(caller: int) -> None:
        caller_id.set(caller)
        call = protected_for(rig, caller, ledger.attempt_async)
        start = ledger.clock.monotonic()
        try:
            await call()
        except asyncio.CancelledError:
            return  # the ledger recorded where
        except BaseException as error:
            ledger.outcomes[caller] = ended(error)
        else:
            ledger.outcomes[caller] = "ok"
        ledger.elapsed[caller] = ledger.clock.monotonic() - start

    tasks = [asyncio.create_task(one(caller)) for caller in range(len(ledger.scripts))]
    # Every caller ends within its retries (instant sleeps); a hung one fails.
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), JOIN_TIMEOUT)


def run_sync(rig: Rig) -> None:
    ledger = rig.ledger

    def worker(index: int) -> None:
        for caller in range(index, len(ledger.scripts), THREADS):
            caller_id.set(caller)
            call = protected_for(rig, caller, ledger.attempt_sync)
            try:
                call()
            except BaseException as error:
                ledger.outcomes[caller] = ended(error)
            else:
                ledger.outcomes[caller] = "ok"

    run_threads(worker)


@storm(
    "retries",
    "callers retrying a failing dependency on a FakeClock: every attempt and delay",
)
def retries(mode: Mode, log: Log) -> None:
    count = mode.pick(10_000, 100_000)
    log.section("asyncio tasks, some cancelled mid-sleep or mid-attempt")
    tasks_rig = rig(count, 1, cancel=True)
    start = time.perf_counter()
    asyncio.run(run_tasks(tasks_rig))
    log.figure(f"ran in {time.perf_counter() - start:.2f} s")
    account(log, tasks_rig, exact_time=True)
    log.section(f"{THREADS} threads, blocking sleeps on the shared fake clock")
    threads_rig = rig(count, 2, cancel=False)
    start = time.perf_counter()
    run_sync(threads_rig)
    log.figure(f"ran in {time.perf_counter() - start:.2f} s")
    account(log, threads_rig, exact_time=False)
