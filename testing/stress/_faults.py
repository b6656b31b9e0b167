"""Faults: raising and blocking hooks and sinks, BaseExceptions, threads + a loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, Final

from aiobreakers import (
    BreakerConfig,
    CircuitBreaker,
    CircuitState,
    Event,
    RetryPolicy,
)
from aiobreakers.testing import BreakerSpy, FakeClock

from ._core import (
    JOIN_TIMEOUT,
    THREADS,
    Abort,
    ExcludedError,
    Log,
    Mode,
    Outcome,
    Tally,
    act,
    check_counts,
    check_probe_slots,
    fine_switching,
    num,
    per_second,
    probe_slots,
    real_wait,
    run_threads,
    storm,
)
from ._threads import entry_points, hammer, outcomes

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator

# Seconds a blocked hook waits at most: longer than the other threads may take
# (JOIN_TIMEOUT) before the storm fails as hung, so that "still blocked" never
# depends on how fast a loaded machine runs them.
WAIT: Final = 2 * JOIN_TIMEOUT


class Counter:
    """A counter that many threads add to."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.value += 1


class HookError(RuntimeError):
    """Raised by a hook or sink on purpose."""


class RaisingSink:
    """An event sink that raises on every event."""

    def __init__(self) -> None:
        self.emits = Counter()

    def emit(self, event: Event) -> None:
        self.emits.add()
        raise HookError(type(event).__name__)


class CountingHandler(logging.Handler):
    """Counts the library's log records instead of printing them."""

    def __init__(self) -> None:
        super().__init__()
        self.records = Counter()

    def emit(self, record: logging.LogRecord) -> None:  # noqa: ARG002 - counted only
        self.records.add()


@contextlib.contextmanager
def captured_logs() -> Iterator[CountingHandler]:
    """Count the ``aiobreakers`` logger's records, and keep them off stderr."""
    logger = logging.getLogger("aiobreakers")
    handler = CountingHandler()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def config(**changes: Any) -> BreakerConfig:
    base: dict[str, Any] = {
        "failure_threshold": 3,
        "success_threshold": 2,
        "recovery_timeout": 0.01,
        "half_open_max_calls": 2,
        "excluded_exceptions": (ExcludedError,),
    }
    return BreakerConfig(**(base | changes))


# -- hooks and sinks that raise -----------------------------------------------------


def raising_listeners(log: Log, calls: int) -> None:
    log.section("every hook and the breaker's sink raise, 8 threads")
    clock = FakeClock()
    sink = RaisingSink()
    breaker = CircuitBreaker("raising", config(), clock=clock, sink=sink)
    raised = Counter()

    def hook(_: object) -> None:
        raised.add()
        raise HookError

    async def async_hook(_: object) -> None:
        raised.add()
        raise HookError

    for register in (
        breaker.on_open,
        breaker.on_close,
        breaker.on_half_open,
        breaker.on_success,
        breaker.on_failure,
    ):
        register(hook)
    breaker.on_open(async_hook)  # no loop in these threads: run in place
    schedules = [outcomes(index, calls // THREADS) for index in range(THREADS)]
    with BreakerSpy() as spy, captured_logs() as logs, fine_switching():
        start = time.perf_counter()
        seen = hammer(breaker, schedules, lambda: clock.advance(1e-4))
        elapsed = time.perf_counter() - start
        log.figure(
            f"{per_second(seen.made, elapsed)}; {num(raised.value)} hook failures,"
            f" {num(sink.emits.value)} sink failures"
        )
        check_counts(log, breaker, seen)
        log.equal(
            "a HookFailed event for every hook that raised",
            len(spy.hook_failures("raising")),
            raised.value,
        )
        log.equal(
            "a log record for every hook and sink failure",
            logs.records.value,
            raised.value + sink.emits.value,
        )
        check_probe_slots(log, breaker, lambda: clock.advance(0.01))


# -- hooks that block ---------------------------------------------------------------


def blocking_hook(log: Log, hook: str, calls: int) -> None:
    """A hook blocking one thread does not hold up the other threads' calls."""
    log.section(f"a sync {hook} hook blocks its thread; 4 others call meanwhile")
    breaker = CircuitBreaker(
        f"blocking-{hook}", config(failure_threshold=1, recovery_timeout=60.0)
    )
    entered, gate, returned = threading.Event(), threading.Event(), threading.Event()
    blocker: list[int] = []

    def block(_: object) -> None:
        if threading.get_ident() in blocker:
            entered.set()
            gate.wait(WAIT)
            returned.set()

    getattr(breaker, hook)(block)
    seen = Tally()

    def blocked() -> None:
        blocker.append(threading.get_ident())
        seen.call(entry_points(breaker)[0], Outcome.FAIL)

    thread = threading.Thread(target=blocked, daemon=True)
    thread.start()
    log.expect("the hook started blocking", entered.wait(WAIT))
    # While it blocks: the lock is free, so metrics, reset and calls proceed.
    breaker.get_metrics()
    breaker.reset()
    tallies = [Tally() for _ in range(4)]
    call = entry_points(breaker)[0]

    def worker(index: int) -> None:
        for _ in range(calls // 4):
            tallies[index].call(call, Outcome.OK)

    start = time.perf_counter()
    run_threads(worker, 4)
    elapsed = time.perf_counter() - start
    still_blocked = not returned.is_set()
    gate.set()
    thread.join(JOIN_TIMEOUT)
    if thread.is_alive():
        raise RuntimeError(f"the blocked {hook} call hung once released")
    for tally in tallies:
        seen.add(tally)
    log.figure(f"while blocked: {per_second(calls, elapsed)} from the other threads")
    log.expect("the other threads finished while the hook still blocked", still_blocked)
    log.equal(
        "their calls all passed",
        sum(t.ok for t in tallies),
        calls // 4 * 4,
    )
    metrics = breaker.get_metrics()
    # The blocked call was counted before its hook ran, so reset() zeroed it.
    log.equal(
        "counted after the reset: exactly their calls",
        metrics["total_calls"],
        calls // 4 * 4,
    )


async def blocking_async_hook(log: Log, calls: int) -> None:
    """An async hook that never finishes does not stall the event loop."""
    log.section("an async on_open hook that waits forever, on the running loop")
    breaker = CircuitBreaker(
        "blocking-async", config(failure_threshold=1, recovery_timeout=60.0)
    )
    release = asyncio.Event()
    started = Counter()

    async def forever(_: object) -> None:
        started.add()
        # Until released; bounded all the same, should the storm stop first.
        await asyncio.wait_for(release.wait(), WAIT)

    breaker.on_open(forever)

    @breaker
    async def protected(outcome: Outcome) -> str:
        return act(outcome)

    seen = Tally()
    await seen.call_async(protected, Outcome.FAIL)
    for _ in range(calls):
        await seen.call_async(protected, Outcome.OK)
    await asyncio.sleep(0)
    log.equal("the hook task started", started.value, 1)
    log.equal(
        "the loop went on: every later call was answered (rejected, open)",
        seen.rejected,
        calls,
    )
    release.set()
    check_counts(log, breaker, seen)


# -- async hooks with no running loop ------------------------------------------------


def async_hooks_without_loop(log: Log, trips: int) -> None:
    log.section("async hooks called from threads with no running loop")
    breaker = CircuitBreaker("loopless", config(recovery_timeout=60.0))
    ran = Counter()
    failed = Counter()

    async def on_open(_: object) -> None:
        await asyncio.sleep(0)
        ran.add()

    async def on_close(_: object) -> None:
        await asyncio.sleep(0)
        failed.add()
        raise HookError

    breaker.on_open(on_open)
    breaker.on_close(on_close)

    def worker(_: int) -> None:
        for _ in range(trips):
            breaker.trip()
            breaker.reset()

    with (
        warnings.catch_warnings(record=True) as caught,
        BreakerSpy() as spy,
        captured_logs(),
    ):
        warnings.simplefilter("always")
        run_threads(worker, 4)
        gc.collect()
    log.figure(f"{num(ran.value)} on_open and {num(failed.value)} on_close runs")
    transitions = spy.transitions("loopless")
    log.equal(
        "each async on_open hook ran to completion in place",
        ran.value,
        sum(new == "open" for _, new in transitions),
    )
    log.equal(
        "each raising async hook was reported (HookFailed)",
        len(spy.hook_failures("loopless")),
        failed.value,
    )
    log.equal(
        "no warning (no coroutine left never awaited)",
        [str(w.message) for w in caught],
        [],
    )


# -- BaseExceptions from the protected function ------------------------------------

BASE_EXCEPTIONS: Final[tuple[type[BaseException], ...]] = (
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    asyncio.CancelledError,
    Abort,
)


def drive(coroutine: Coroutine[Any, Any, object]) -> object:
    """Run a coroutine that never suspends, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine suspended")


def raising_ways(
    breaker: CircuitBreaker[..., Any],
) -> dict[str, Callable[[BaseException], object]]:
    """Each way of calling through *breaker* a function that raises *error*."""

    def raise_(error: BaseException) -> object:
        raise error

    async def raise_async(error: BaseException) -> object:
        raise error

    def with_block(error: BaseException) -> object:
        with breaker:
            raise error

    async def async_with(error: BaseException) -> object:
        async with breaker:
            raise error

    decorated = breaker(raise_)
    decorated_async = breaker(raise_async)
    return {
        "decorator": decorated,
        "call_sync": lambda error: breaker.call_sync(raise_, error),
        "with": with_block,
        "async decorator": lambda error: drive(decorated_async(error)),
        "call_async": lambda error: drive(breaker.call_async(raise_async, error)),
        "async with": lambda error: drive(async_with(error)),
    }


def base_exceptions(log: Log, repeats: int) -> None:
    log.section("the protected function raises BaseExceptions")
    wrong: list[str] = []
    cases = 0
    for kind in BASE_EXCEPTIONS:
        for half_open in (False, True):
            for way in raising_ways(CircuitBreaker("probe")):
                for _ in range(repeats):
                    cases += 1
                    problem = one_base_exception(kind, way, half_open=half_open)
                    if problem:
                        wrong.append(f"{kind.__name__} via {way}: {problem}")
                        break
    log.figure(
        f"{num(cases)} calls: {len(BASE_EXCEPTIONS)} kinds x 6 ways x closed/half-open"
    )
    log.expect(
        "re-raised as is; counted as neither; state unchanged; slot freed;"
        " never retried",
        not wrong,
        "; ".join(wrong[:3]),
    )


def one_base_exception(  # noqa: PLR0911 - one return per broken promise
    kind: type[BaseException], way: str, *, half_open: bool
) -> str:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "base", config(success_threshold=1, half_open_max_calls=1), clock=clock
    )
    if half_open:
        breaker.trip()
        clock.advance(1.0)
    state = breaker.state
    before = breaker.get_metrics()
    error = kind()
    call = raising_ways(breaker)[way]
    attempts = Counter()

    def attempt() -> object:
        attempts.add()
        return call(error)

    try:
        RetryPolicy("base", sleeper=clock, clock=clock).call_sync(attempt)
    except BaseException as raised:
        if raised is not error:
            return f"raised {raised!r}"
    else:
        return "did not raise"
    if attempts.value != 1:
        return f"{attempts.value} attempts"
    after = breaker.get_metrics()
    keys = ("total_calls", "total_successes", "total_failures", "total_rejected")
    if any(before[k] != after[k] for k in keys):  # type: ignore[literal-required]
        return f"counted: {after}"
    if breaker.state is not state:
        return f"state {breaker.state}"
    breaker.call_sync(lambda: None)  # the probe slot is free again
    if breaker.state is not CircuitState.CLOSED:
        return "probe slot not freed"
    return ""


def interrupted_hooks(log: Log) -> None:
    log.section("a hook raises a BaseException once (Ctrl-C while it runs)")
    wrong: list[str] = []
    for hook in ("on_open", "on_half_open", "on_close", "on_success", "on_failure"):
        clock = FakeClock()
        breaker = CircuitBreaker(
            f"interrupted-{hook}",
            config(failure_threshold=1, success_threshold=1, half_open_max_calls=1),
            clock=clock,
        )
        armed = [True]

        def interrupt(_: object, armed: list[bool] = armed) -> None:
            if armed:
                armed.clear()
                raise KeyboardInterrupt

        getattr(breaker, hook)(interrupt)
        call = entry_points(breaker)[0]
        for outcome in (Outcome.OK, Outcome.FAIL, None, Outcome.OK, Outcome.OK):
            if outcome is None:
                clock.advance(1.0)
                continue
            with contextlib.suppress(KeyboardInterrupt):
                Tally().call(call, outcome)
        slots = probe_slots(breaker, functools.partial(clock.advance, 1.0))
        if slots != 1:
            wrong.append(f"{hook}: {slots} probe slots of 1 left")
    log.expect(
        "every probe slot survives (the call it interrupted frees its slot)",
        not wrong,
        "; ".join(wrong),
    )


# -- threads and an event loop on one breaker ---------------------------------------


def threads_and_loop(log: Log, calls: int) -> None:
    log.section("4 threads and an event loop (200 tasks) on one breaker at once")
    recovery = 0.0005
    breaker = CircuitBreaker("mixed", config(recovery_timeout=recovery))
    sync_calls = entry_points(breaker)
    tallies = [Tally() for _ in range(5)]

    @breaker
    async def protected(outcome: Outcome) -> str:
        await asyncio.sleep(0)
        return act(outcome)

    async def tasks(schedule: list[Outcome], tally: Tally) -> None:
        async def one(part: list[Outcome]) -> None:
            for outcome in part:
                await tally.call_async(protected, outcome)

        await asyncio.gather(*(one(schedule[i::200]) for i in range(200)))

    def worker(index: int) -> None:
        schedule = outcomes(100 + index, calls // 5)
        if index == 4:
            asyncio.run(tasks(schedule, tallies[index]))
            return
        for outcome in schedule:
            tallies[index].call(sync_calls[index % 3], outcome)

    with fine_switching():
        start = time.perf_counter()
        run_threads(worker, 5)
        elapsed = time.perf_counter() - start
    seen = Tally()
    for tally in tallies:
        seen.add(tally)
    metrics = breaker.get_metrics()
    log.figure(f"{per_second(seen.made, elapsed)}; {num(metrics['total_trips'])} trips")
    check_counts(log, breaker, seen)
    log.at_least("it tripped (total_trips)", metrics["total_trips"], 1)
    check_probe_slots(log, breaker, real_wait(recovery * 2))


@storm("faults", "raising/blocking hooks and sinks, BaseExceptions, threads + a loop")
def faults(mode: Mode, log: Log) -> None:
    raising_listeners(log, mode.pick(40_000, 200_000))
    for hook in ("on_failure", "on_open"):
        blocking_hook(log, hook, mode.pick(20_000, 200_000))
    asyncio.run(blocking_async_hook(log, mode.pick(1_000, 10_000)))
    async_hooks_without_loop(log, mode.pick(50, 500))
    base_exceptions(log, mode.pick(3, 30))
    interrupted_hooks(log)
    threads_and_loop(log, mode.pick(50_000, 500_000))
