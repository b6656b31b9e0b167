"""
Regressions found by the stress runs in ``testing/stress``.

Each test states one behaviour the design promises and that a storm showed
broken; each fails until the library is fixed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import sys
import threading
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest

from aiobreakers import (
    BreakerConfig,
    CircuitBreaker,
    CircuitState,
    ConsecutiveFailures,
    RateWindow,
    RetryConfig,
)
from aiobreakers.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

HUGE = 10**400  # an int too large for a float


# -- a huge int for a duration ----------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: BreakerConfig(recovery_timeout=HUGE), "recovery_timeout"),
        (lambda: RetryConfig(base_delay=HUGE, max_delay=HUGE), "base_delay"),
        (lambda: RetryConfig(max_delay=HUGE), "max_delay"),
    ],
    ids=["recovery_timeout", "base_delay", "max_delay"],
)
def test_huge_int_duration_is_a_value_error_naming_the_field(
    build: Callable[[], object], field: str
) -> None:
    # check_seconds calls math.isfinite(value), which raises OverflowError
    # ("int too large to convert to float", no field named) for such an int.
    with pytest.raises(ValueError, match=field):
        build()


# -- a hook that raises a BaseException while a call is admitted --------------------


class Interrupt(BaseException):
    """Stands for KeyboardInterrupt arriving while a hook runs."""


def interrupting_once() -> Callable[[object], None]:
    raised: list[bool] = []

    def hook(_: object) -> None:
        if not raised:
            raised.append(True)
            raise Interrupt

    return hook


def test_base_exception_from_on_half_open_hook_frees_the_probe_slot() -> None:
    # The call that moves the circuit to half-open takes a probe slot, then
    # runs the on_half_open hooks outside the lock. A BaseException from a
    # hook (Ctrl-C in a blocking hook, an in-place async hook cancelled) ends
    # the call before it runs, and the slot is never given back: with
    # half_open_max_calls=1 the breaker rejects every call forever, even
    # after trip() or reset().
    clock = FakeClock()
    config = BreakerConfig(success_threshold=1, recovery_timeout=1.0)
    breaker = CircuitBreaker("leak", config, clock=clock)
    breaker.on_half_open(interrupting_once())
    breaker.trip()
    clock.advance(1.0)
    with pytest.raises(Interrupt):
        breaker.call_sync(lambda: "ok")
    assert breaker.call_sync(lambda: "ok") == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_base_exception_from_on_half_open_hook_in_a_with_block() -> None:
    # The same leak through ``with breaker:`` (``__enter__`` admits the block).
    clock = FakeClock()
    config = BreakerConfig(success_threshold=1, recovery_timeout=1.0)
    breaker = CircuitBreaker("leak-with", config, clock=clock)
    breaker.on_half_open(interrupting_once())
    breaker.trip()
    clock.advance(1.0)
    with pytest.raises(Interrupt), breaker:
        pass
    with breaker:
        pass
    assert breaker.state is CircuitState.CLOSED


def test_cancelled_async_hook_run_in_place_frees_the_probe_slot() -> None:
    # With no running loop an async hook runs in place under asyncio.run; if
    # it ends cancelled, CancelledError (a BaseException) escapes the
    # admission the same way.
    clock = FakeClock()
    config = BreakerConfig(success_threshold=1, recovery_timeout=1.0)
    breaker = CircuitBreaker("leak-async-hook", config, clock=clock)
    cancelled: list[bool] = []

    async def hook(_: object) -> None:
        if not cancelled:
            cancelled.append(True)
            raise asyncio.CancelledError

    breaker.on_half_open(hook)
    breaker.trip()
    clock.advance(1.0)
    with pytest.raises(asyncio.CancelledError):
        breaker.call_sync(lambda: "ok")
    assert breaker.call_sync(lambda: "ok") == "ok"


# -- get_metrics() while other threads record successes -----------------------------


@pytest.fixture
def fine_switching() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.mark.usefixtures("fine_switching")
def test_metrics_snapshot_is_consistent_under_concurrent_successes() -> None:
    # get_metrics() documents "the snapshot is consistent: it is taken under
    # the breaker's lock", but healthy closed calls record their success
    # without the lock (the _GIL design). get_metrics() reads _successes
    # twice (for total_calls and for total_successes) with a Python-level
    # call in between (the state's ``.value``), where the interpreter may
    # switch to a thread that records a success: the snapshot then says
    # total_calls != total_successes + total_failures.
    breaker = CircuitBreaker("snapshot", BreakerConfig(failure_threshold=10**9))

    @breaker
    def healthy() -> int:
        return 1

    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            for _ in range(1000):
                healthy()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    bad: list[tuple[int, int, int]] = []
    try:
        for _ in range(20_000):
            metrics = breaker.get_metrics()
            calls = metrics["total_calls"]
            parts = metrics["total_successes"] + metrics["total_failures"]
            if calls != parts:
                bad.append(
                    (calls, metrics["total_successes"], metrics["total_failures"])
                )
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert bad == [], f"{len(bad)} inconsistent snapshots, first {bad[0]}"


# -- found by review -----------------------------------------------------------


def test_growing_recovery_timeout_survives_a_very_long_outage() -> None:
    """After 2,000 failed probes the wait is the cap, and the caller's error stays."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        "outage",
        BreakerConfig(
            failure_threshold=1,
            success_threshold=1,
            recovery_timeout=1,
            recovery_multiplier=2.0,
            max_recovery_timeout=300,
        ),
        clock=clock,
    )

    def down() -> None:
        raise ConnectionError

    for _ in range(2000):
        clock.advance(300)
        with pytest.raises(ConnectionError):
            breaker.call_sync(down)
    assert breaker.state == "open"
    assert breaker.get_metrics()["time_until_recovery"] == 300.0


def test_a_fake_clock_serves_a_second_event_loop() -> None:
    """A sleeper left behind in a finished loop does not stall the next loop."""
    clock = FakeClock()

    async def leave_a_sleeper() -> None:
        asyncio.get_running_loop().create_task(clock.sleep_async(100))
        await asyncio.sleep(0)

    asyncio.run(leave_a_sleeper())
    asyncio.run(asyncio.wait_for(clock.sleep_async(1), timeout=5))
    assert clock.monotonic() == 1.0


def test_rate_thresholds_are_reached_exactly() -> None:
    """7 failures of 100 reach failure_rate=0.07 (no float rounding in the way)."""
    breaker = CircuitBreaker(
        "rate",
        BreakerConfig(trip=RateWindow(calls=100, minimum_calls=100, failure_rate=0.07)),
        clock=FakeClock(),
    )

    def down() -> None:
        raise ConnectionError

    for _ in range(93):
        breaker.call_sync(lambda: None)
    for _ in range(7):
        with pytest.raises(ConnectionError):
            breaker.call_sync(down)
    assert breaker.state == "open"


def test_replace_keeps_a_config_with_consecutive_failures_valid() -> None:
    """dataclasses.replace on a config with trip=ConsecutiveFailures works."""
    config = BreakerConfig(trip=ConsecutiveFailures(threshold=3))
    changed = dataclasses.replace(config, recovery_timeout=30)
    assert changed.trip_policy == ConsecutiveFailures(threshold=3)
    assert changed.recovery_timeout == 30


def test_a_class_with_an_async_call_is_not_an_async_function() -> None:
    """Decorating the class wraps construction, which is synchronous."""

    class Client:
        async def __call__(self) -> str:
            return "called"

    breaker = CircuitBreaker("cls")
    made = breaker(Client)()
    assert isinstance(made, Client)

    async def use() -> str:
        return await breaker(functools.partial(Client()))()

    assert asyncio.run(use()) == "called"


def test_left_out_defaults_stay_left_out() -> None:
    """The wrapper passes on what the caller passed: defaults stay the function's."""

    def fetch(url: str, timeout: float = 1.0) -> str:
        return f"{url} {timeout}"

    spy = mock.create_autospec(fetch, return_value="ok")
    protected = CircuitBreaker("defaults")(spy)
    protected("u")
    spy.assert_called_once_with("u")

    def plain(url: str, timeout: float = 1.0) -> str:
        return f"{url} {timeout}"

    decorated = CircuitBreaker("later")(plain)
    plain.__defaults__ = (2.0,)
    assert decorated("u") == "u 2.0"

    seen: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def fallback(*args: object, **kwargs: object) -> str:
        seen.append((args, kwargs))
        return "fallback"

    breaker: CircuitBreaker[..., Any] = CircuitBreaker("fb", fallback=fallback)
    served = breaker(plain)
    breaker.trip()
    assert served("u", timeout=3.0) == "fallback"
    assert seen == [(("u",), {"timeout": 3.0})]
