"""
Regressions found by the stress runs in ``testing/stress``.

Each test states one behaviour the design promises and that a storm showed
broken; each fails until the library is fixed.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import TYPE_CHECKING

import pytest

from aiobreakers import (
    BreakerConfig,
    CircuitBreaker,
    CircuitState,
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
