"""
Nothing wedges a breaker: interrupts anywhere, fork, bad clocks, broken filters.

Each finding of issue 12 has a test here: a probe slot lost to an exception
delivered between admission and outcome, a child of ``os.fork()`` that
deadlocks or inherits its parent's probes, clocks that return NaN or go
backwards, and exception filters that raise.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import aiobreakers
from aiobreakers import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    RateWindow,
    RetryBudget,
    RetryConfig,
    RetryPolicy,
    set_defaults,
)
from aiobreakers.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType

    from conftest import ForkChildren

LIBRARY = str(Path(aiobreakers.__file__).parent)
PROBE_TIMEOUT = 10.0


def ok() -> str:
    return "ok"


async def ok_async() -> str:
    return "ok"


def half_open(clock: FakeClock, **config: Any) -> CircuitBreaker[..., Any]:
    """A breaker whose next call is a probe, with room for one probe at a time."""
    settings: dict[str, Any] = {
        "recovery_timeout": 1.0,
        "success_threshold": 5,
        "probe_timeout": PROBE_TIMEOUT,
    }
    breaker = CircuitBreaker("api", BreakerConfig(**(settings | config)), clock=clock)
    breaker.trip()
    clock.advance(1.0)
    return breaker


def admits_a_probe(breaker: CircuitBreaker[..., Any]) -> bool:
    try:
        breaker.call_sync(ok)
    except CircuitOpenError:
        return False
    return True


# -- interrupted probes --------------------------------------------------------


class Interrupt(BaseException):
    """What the sweep injects: a BaseException, like KeyboardInterrupt."""


# CPython delivers an asynchronous exception (a signal handler's
# KeyboardInterrupt or TimeoutError) only where it checks for pending work:
# on entering a function and after a call returns (and on backward jumps). A
# profile function sees exactly those points as its "call", "return" and
# "c_return" events, and what it raises surfaces there. (A tracer raising at
# arbitrary "line" events could also strike where no signal ever can, such
# as between a with-block's last line and its __exit__, which CPython 3.10+
# guarantees to run: bpo-29988.)
# One exception: __enter__ and __aenter__ are called by the with-statement
# itself, which checks for nothing between their return and the start of the
# block (so that __exit__ is always owed once the block has begun).
INTERRUPTIBLE = frozenset({"call", "return", "c_return"})
ENTERED_BY_WITH = frozenset(
    {CircuitBreaker.__enter__.__code__, CircuitBreaker.__aenter__.__code__}
)


def interrupt_at(number: int, run: Callable[[], object]) -> str | None:
    """
    Run *run*, raising Interrupt at its *number*-th interruptible point.

    Only points inside the library count. Returns where the interrupt was
    raised (``"call __exit__"``), or None when the path has fewer points.
    """
    seen = 0
    where = None

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal seen, where
        code = frame.f_code
        if (
            event in INTERRUPTIBLE
            and code.co_filename.startswith(LIBRARY)
            and not (event == "return" and code in ENTERED_BY_WITH)
        ):
            seen += 1
            if seen == number:
                where = f"{event} {code.co_name}"
                raise Interrupt

    sys.setprofile(profile)
    try:
        run()
    except Interrupt:
        return where
    finally:
        sys.setprofile(None)
    return None


def probe_runs(breaker: CircuitBreaker[..., Any]) -> dict[str, Callable[[], object]]:
    def with_block() -> None:
        with breaker:
            ok()

    async def async_with_block() -> None:
        async with breaker:
            await ok_async()

    return {
        "decorated": breaker(ok),
        "call_sync": lambda: breaker.call_sync(ok),
        "with": with_block,
        "decorated_async": lambda: asyncio.run(breaker(ok_async)()),
        "async_with": lambda: asyncio.run(async_with_block()),
    }


@pytest.mark.parametrize(
    "kind", ["decorated", "call_sync", "with", "decorated_async", "async_with"]
)
def test_an_interrupt_anywhere_in_a_probe_frees_its_slot(kind: str) -> None:
    """
    A BaseException at every point a signal could strike never leaks the slot.

    The slot comes back at once (at the latest when the next call asks for
    one), but in the few steps a with-block's __exit__ (or __aexit__) takes
    before it has found its block: entering __exit__ and OpenBlocks.exit, and
    reading the context's blocks. There probe_timeout gives it back.
    """
    points = 0
    reclaimed = set()
    number = 0
    while True:
        number += 1
        clock = FakeClock()
        breaker = half_open(clock)
        where = interrupt_at(number, probe_runs(breaker)[kind])
        if where is None:
            break
        points += 1
        if not admits_a_probe(breaker):
            reclaimed.add(where)
            clock.advance(PROBE_TIMEOUT)
            assert admits_a_probe(breaker), f"slot lost for good at {where}"
    assert points > 10  # the sweep reached the library's bookkeeping
    window = {"call __aexit__", "call __exit__", "call exit", "c_return exit"}
    assert reclaimed <= window, reclaimed - window


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
@pytest.mark.parametrize("error", [KeyboardInterrupt, TimeoutError])
def test_a_real_signal_during_a_probe_frees_its_slot(
    error: type[BaseException],
) -> None:
    """
    A signal handler raising mid-probe (Ctrl-C, a timeout) frees the slot.

    KeyboardInterrupt counts as nothing; TimeoutError counts as a failed probe.
    """

    def handler(signum: int, frame: object) -> None:
        raise error

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        for kind in ("decorated", "call_sync", "with"):
            clock = FakeClock()
            breaker = half_open(clock)

            def interrupted() -> str:
                signal.raise_signal(signal.SIGUSR1)
                return "never"

            with pytest.raises(error):
                if kind == "decorated":
                    breaker(interrupted)()
                elif kind == "call_sync":
                    breaker.call_sync(interrupted)
                else:
                    with breaker:
                        interrupted()
            if issubclass(error, Exception):  # a failed probe: open again
                assert breaker.state == "open"
                clock.advance(1.0)
            assert admits_a_probe(breaker), kind
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_slot_held_past_the_probe_timeout_is_reclaimed() -> None:
    """A probe that never reports gives its slot back after probe_timeout."""
    clock = FakeClock()
    breaker = half_open(clock)
    stuck = breaker.__enter__()  # a probe whose outcome never comes
    assert not admits_a_probe(breaker)
    clock.advance(PROBE_TIMEOUT - 0.5)
    assert not admits_a_probe(breaker)
    clock.advance(0.5)
    assert admits_a_probe(breaker)
    stuck.__exit__(None, None, None)  # a late outcome still counts
    metrics = breaker.get_metrics()
    assert metrics["total_successes"] == 2


def test_reset_frees_the_slots_of_probes_still_running() -> None:
    """reset() returns the breaker to a clean, admitting state."""
    clock = FakeClock()
    breaker = half_open(clock, half_open_max_calls=1)
    with breaker:
        breaker.trip()
        clock.advance(1.0)
        assert not admits_a_probe(breaker)
        breaker.reset()
        breaker.trip()
        clock.advance(1.0)
        assert admits_a_probe(breaker)
    assert admits_a_probe(breaker)


class Raising(type):
    """A metaclass whose isinstance check fails, as a broken filter might."""

    def __instancecheck__(cls, instance: object) -> bool:
        raise RuntimeError("broken filter")


class UncheckableError(Exception, metaclass=Raising):
    """An exception class that cannot be checked."""


def test_a_filter_that_raises_counts_a_failure_and_frees_the_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The caller gets its own error; the breaker logs the filter's."""
    clock = FakeClock()
    breaker = half_open(clock, included_exceptions=(UncheckableError,))

    def down() -> None:
        raise ConnectionError

    with (
        caplog.at_level(logging.ERROR, logger="aiobreakers"),
        pytest.raises(ConnectionError),
    ):
        breaker.call_sync(down)
    assert "broken filter" in caplog.text
    assert breaker.get_metrics()["total_failures"] == 1
    assert breaker.state == "open"  # the probe counted as failed
    clock.advance(2.0)
    assert admits_a_probe(breaker)


def test_a_retry_filter_that_raises_stops_retrying(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The attempt's own error reaches the caller, counted, not a RuntimeError."""
    policy = RetryPolicy("api", RetryConfig(retryable_exceptions=(UncheckableError,)))

    def down() -> None:
        raise ConnectionError

    with (
        caplog.at_level(logging.ERROR, logger="aiobreakers"),
        pytest.raises(ConnectionError),
    ):
        policy.call_sync(down)
    assert "broken filter" in caplog.text
    metrics = policy.get_metrics()
    assert (metrics["total_failures"], metrics["total_retries"]) == (1, 0)


# -- clocks --------------------------------------------------------------------


class ScriptedClock:
    """Returns the readings it is given, then the last one forever."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def monotonic(self) -> float:
        if len(self.readings) > 1:
            return self.readings.pop(0)
        return self.readings[0]

    def set(self, *readings: float) -> None:
        self.readings = list(readings)


def test_a_nan_reading_at_the_trip_does_not_wedge_the_circuit() -> None:
    """A NaN reading is ignored: the open spell starts at the last good time."""
    clock = ScriptedClock(100.0)
    breaker = CircuitBreaker("api", BreakerConfig(recovery_timeout=30), clock=clock)
    assert breaker.state == "closed"
    breaker.get_metrics()  # the breaker has seen 100.0
    clock.set(math.nan)
    breaker.trip()
    clock.set(129.0)
    assert breaker.get_metrics()["time_until_recovery"] == pytest.approx(1.0)
    clock.set(130.0)
    assert breaker.state == "half_open"
    assert admits_a_probe(breaker)


@pytest.mark.parametrize("reading", [math.inf, -math.inf, math.nan])
def test_non_finite_readings_never_open_or_stall(reading: float) -> None:
    """Non-finite readings change nothing; durations stay finite and >= 0."""
    clock = ScriptedClock(5.0)
    breaker = CircuitBreaker("api", BreakerConfig(failure_threshold=1), clock=clock)
    breaker.call_sync(ok)
    clock.set(reading)
    breaker.call_sync(ok)
    breaker.trip()
    clock.set(5.0 + 60.0)
    assert breaker.state == "half_open"
    average = breaker.get_metrics()["avg_call_duration_ms"]
    assert math.isfinite(average)
    assert average >= 0


def test_a_clock_that_goes_back_keeps_the_time_left() -> None:
    """A backwards jump neither stretches nor shortens the open spell."""
    clock = ScriptedClock(1000.0)
    breaker = CircuitBreaker("api", BreakerConfig(recovery_timeout=30), clock=clock)
    breaker.trip()
    clock.set(1010.0)
    assert breaker.get_metrics()["time_until_recovery"] == pytest.approx(20.0)
    clock.set(10.0)  # back by a thousand seconds
    assert breaker.get_metrics()["time_until_recovery"] == pytest.approx(20.0)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call_sync(ok)
    assert info.value.retry_after == pytest.approx(20.0)
    clock.set(30.0)
    assert admits_a_probe(breaker)


def test_durations_are_never_negative() -> None:
    """A clock that goes back during a call gives a duration of 0, not less."""
    clock = ScriptedClock(50.0)
    breaker = CircuitBreaker("api", clock=clock)

    def travels_back() -> None:
        clock.set(40.0)

    breaker.call_sync(travels_back)
    breaker(travels_back)()
    assert breaker.get_metrics()["avg_call_duration_ms"] == 0.0


def test_swapping_the_default_clock_while_open_keeps_the_wait_sane() -> None:
    """An open breaker on the default clock waits out its timeout on the new one."""
    breaker = CircuitBreaker("api", BreakerConfig(recovery_timeout=30))
    breaker.trip()
    clock = FakeClock()
    previous = set_defaults(clock=clock)
    try:
        assert breaker.get_metrics()["time_until_recovery"] <= 30.0
        with pytest.raises(CircuitOpenError) as info:
            breaker(ok)()
        assert info.value.retry_after <= 30.0
        clock.advance(30)
        assert breaker.state == "half_open"
    finally:
        previous.install()


def test_a_time_window_restarts_when_the_clock_goes_back() -> None:
    """A time window never freezes on a clock that jumped back."""
    clock = ScriptedClock(10_000.0)
    window = RateWindow(seconds=10, minimum_calls=2, failure_rate=1.0)
    breaker = CircuitBreaker("api", BreakerConfig(trip=window), clock=clock)
    breaker.call_sync(ok)
    clock.set(5.0)
    for _ in range(3):
        breaker.call_sync(ok)
    assert breaker.get_metrics()["window_calls"] == 3
    clock.set(20.0)
    assert breaker.get_metrics()["window_calls"] == 0


# -- fallbacks -----------------------------------------------------------------


def test_a_sync_fallback_may_not_hand_an_awaitable_to_a_sync_caller() -> None:
    """A fallback returning a coroutine to a sync caller is a TypeError."""

    async def cached() -> str:
        return "cached"

    def fallback() -> Any:
        return cached()  # a sync function that returns a coroutine

    breaker = CircuitBreaker("api", fallback=fallback)
    breaker.trip()
    with pytest.raises(TypeError, match="returned an awaitable"):
        breaker(ok)()
    with pytest.raises(TypeError, match="give sync functions a sync fallback"):
        breaker.call_sync(ok)


# -- fork ----------------------------------------------------------------------

fork_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
# Forking a process with threads is what prefork servers do; CPython 3.12+
# warns about it.
threads_and_fork = pytest.mark.filterwarnings(
    "ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning"
)


@pytest.fixture
def hammered() -> Iterator[tuple[CircuitBreaker[..., Any], RetryPolicy]]:
    """A breaker and a policy whose locks four threads take all the time."""
    breaker = CircuitBreaker("api", BreakerConfig(failure_threshold=1))
    policy = RetryPolicy("api", RetryConfig(max_retries=1, base_delay=0.0))
    stop = threading.Event()

    def hammer() -> None:
        protected = breaker(ok)
        while not stop.is_set():
            breaker.get_metrics()
            breaker.trip()
            breaker.reset()
            try:  # another thread may have tripped it in between
                protected()
                with breaker:
                    pass
            except CircuitOpenError:
                pass
            policy.call_sync(ok)
            policy.get_metrics()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        yield breaker, policy
    finally:
        stop.set()
        for thread in threads:
            thread.join()


@fork_only
@threads_and_fork
def test_children_forked_under_load_never_deadlock(
    hammered: tuple[CircuitBreaker[..., Any], RetryPolicy],
    fork_children: ForkChildren,
) -> None:
    """Every lock a child needs works, whatever another thread held at fork."""
    breaker, policy = hammered

    def child() -> bool:
        breaker.get_metrics()
        breaker.trip()
        breaker.reset()
        with breaker:
            pass
        assert breaker(ok)() == "ok"
        assert policy.call_sync(ok) == "ok"
        policy.get_metrics()
        return breaker.state == "closed"

    statuses = fork_children(child, 25)
    assert statuses == [0] * 25, statuses


@fork_only
@threads_and_fork
def test_a_child_does_not_inherit_probes_in_flight(
    fork_children: ForkChildren,
) -> None:
    """A probe running in the parent at fork holds no slot in the child."""
    clock = FakeClock()
    breaker = half_open(clock)
    admitted = threading.Event()
    release = threading.Event()

    def probe() -> None:
        with breaker:
            admitted.set()
            release.wait(10.0)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        assert admitted.wait(10.0)
        assert not admits_a_probe(breaker)  # the parent's only slot is taken
        assert fork_children(lambda: admits_a_probe(breaker)) == [0]
    finally:
        release.set()
        thread.join()


def test_a_backwards_jump_shorter_than_the_growth_cap_is_rebased() -> None:
    """The short path rejects by the spell's own timeout, not the growth cap."""
    clock = ScriptedClock(3000.0)
    config = BreakerConfig(
        recovery_timeout=1.0, recovery_multiplier=2.0, max_recovery_timeout=3600
    )
    breaker = CircuitBreaker("api", config, clock=clock)
    protected = breaker(ok)
    breaker.trip()
    clock.set(1000.0)  # back by 2,000 s: within the cap, far past the timeout
    with pytest.raises(CircuitOpenError) as info:
        protected()
    assert info.value.retry_after == pytest.approx(1.0)
    clock.set(1001.0)
    assert protected() == "ok"


def test_a_retry_budget_survives_a_clock_that_goes_back() -> None:
    """Deposits after a backwards jump count, and old retries still expire."""
    clock = ScriptedClock(10_000.0)
    budget = RetryBudget(ratio=0.5, min_retries_per_second=0.0, clock=clock)
    for _ in range(2):
        budget.deposit()
    assert budget.withdraw()
    clock.set(0.0)  # another clock, far behind
    for _ in range(100):
        budget.deposit()
    assert budget.get_metrics()["calls"] == 102
    allowed = sum(budget.withdraw() for _ in range(60))
    assert allowed == 50  # half of 102 calls, less the retry already made
    clock.set(20.0)  # past the 10 s window: all of it has expired
    assert budget.get_metrics() == {
        "balance": 0.0,
        "calls": 0,
        "retries": 0,
        "refusals": 10,
    }
