"""Trip policies: rate windows by count and by time, slow calls, growing recovery."""

from __future__ import annotations

import functools
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiobreakers import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    ConsecutiveFailures,
    RateWindow,
    StateChanged,
    SystemClock,
)
from aiobreakers.testing import BreakerSpy, FakeClock


def make(clock: FakeClock, spy: BreakerSpy | None = None, **config: Any) -> Any:
    return CircuitBreaker("api", BreakerConfig(**config), clock=clock, sink=spy)


def call(
    breaker: CircuitBreaker[..., Any],
    clock: FakeClock,
    *,
    failed: bool = False,
    seconds: float = 0.0,
    decorated: bool = False,
) -> None:
    """Run one protected call that takes *seconds* and fails if told to."""

    def dependency() -> None:
        clock.advance(seconds)
        if failed:
            raise ConnectionError

    protected = (
        breaker(dependency)
        if decorated
        else functools.partial(breaker.call_sync, dependency)
    )
    if failed:
        with pytest.raises(ConnectionError):
            protected()
    else:
        protected()


def test_count_window_never_judges_before_minimum_calls(clock: FakeClock) -> None:
    """Three failures of three are not judged when four calls are the minimum."""
    breaker = make(clock, trip=RateWindow(calls=10, minimum_calls=4, failure_rate=0.5))
    for _ in range(3):
        call(breaker, clock, failed=True)
    assert breaker.state == "closed"
    call(breaker, clock, failed=True)
    assert breaker.state == "open"


def test_count_window_trips_on_the_call_that_reaches_the_rate(
    clock: FakeClock,
) -> None:
    """50% over the last 10 calls, from 4 calls on: the 4th call (2 of 4) trips."""
    spy = BreakerSpy()
    breaker = make(
        clock, spy, trip=RateWindow(calls=10, minimum_calls=4, failure_rate=0.5)
    )
    for failed in (True, False, False):
        call(breaker, clock, failed=failed)
    assert breaker.state == "closed"  # 1 of 3, and too few calls
    call(breaker, clock, failed=False)
    assert breaker.state == "closed"  # 1 of 4 = 25%
    call(breaker, clock, failed=True)
    assert breaker.state == "closed"  # 2 of 5 = 40%
    call(breaker, clock, failed=True)
    assert breaker.state == "open"  # 3 of 6 = 50%
    changed = spy.events[-1]
    assert changed == StateChanged(
        name="api",
        old=CircuitState.CLOSED,
        new=CircuitState.OPEN,
        reason="failure_rate",
        at=0.0,
        window_calls=6,
        failure_rate=0.5,
        slow_call_rate=0.0,
    )


def test_count_window_forgets_calls_that_slide_out(clock: FakeClock) -> None:
    """Only the last N calls count: an old failure leaves the window."""
    breaker = make(clock, trip=RateWindow(calls=4, minimum_calls=4, failure_rate=0.75))
    for failed in (True, False, False, False, False, True, True):
        call(breaker, clock, failed=failed)
    assert breaker.get_metrics()["window_failure_rate"] == 0.5  # S S F F
    assert breaker.state == "closed"
    call(breaker, clock, failed=True)  # S F F F
    assert breaker.state == "open"


def test_time_window_expires_old_calls(clock: FakeClock) -> None:
    """Calls older than the window's seconds no longer count."""
    breaker = make(
        clock, trip=RateWindow(seconds=10, minimum_calls=3, failure_rate=1.0)
    )
    call(breaker, clock, failed=True)
    call(breaker, clock, failed=True)
    clock.advance(10)
    call(breaker, clock, failed=True)
    assert breaker.get_metrics()["window_calls"] == 1
    assert breaker.state == "closed"
    clock.advance(9)
    call(breaker, clock, failed=True)
    call(breaker, clock, failed=True)
    assert breaker.state == "open"


def test_time_window_metrics_empty_after_a_long_idle(clock: FakeClock) -> None:
    """Metrics read after the window passed show no calls, no rates."""
    breaker = make(
        clock, trip=RateWindow(seconds=60, minimum_calls=5, failure_rate=0.5)
    )
    call(breaker, clock, failed=True)
    assert breaker.get_metrics()["window_failure_rate"] == 1.0
    clock.advance(3600)
    metrics = breaker.get_metrics()
    assert (metrics["window_calls"], metrics["window_failure_rate"]) == (0, 0.0)


def test_slow_calls_trip_the_circuit(clock: FakeClock) -> None:
    """80% of calls over 2 s: slow successes and slow failures both count."""
    spy = BreakerSpy()
    breaker = make(
        clock,
        spy,
        trip=RateWindow(
            calls=5, minimum_calls=5, slow_call_rate=0.8, slow_call_duration=2.0
        ),
    )
    call(breaker, clock, seconds=3)
    call(breaker, clock, seconds=2)  # exactly 2 s is not slower than 2 s
    call(breaker, clock, seconds=2.5, failed=True)
    call(breaker, clock, seconds=1)
    assert breaker.state == "closed"  # too few calls to judge
    call(breaker, clock, seconds=5)  # 3, 2, 2.5, 1, 5: 3 of 5 slow
    assert breaker.state == "closed"
    assert spy.transitions("api") == []
    call(breaker, clock, seconds=9)  # 2, 2.5, 1, 5, 9: 3 of 5
    call(breaker, clock, seconds=9)  # 2.5, 1, 5, 9, 9: 4 of 5 = 80%
    assert breaker.state == "open"
    assert spy.events[-1] == StateChanged(
        name="api",
        old=CircuitState.CLOSED,
        new=CircuitState.OPEN,
        reason="slow_call_rate",
        at=31.5,
        window_calls=5,
        failure_rate=0.2,
        slow_call_rate=0.8,
    )


def test_window_starts_afresh_after_the_circuit_closes(clock: FakeClock) -> None:
    """Closing (and reset) empties the window."""
    breaker = make(
        clock,
        trip=RateWindow(calls=10, minimum_calls=2, failure_rate=0.5),
        recovery_timeout=5,
        success_threshold=1,
    )
    call(breaker, clock, failed=True)
    call(breaker, clock, failed=True)
    clock.advance(5)
    call(breaker, clock)
    assert breaker.state == "closed"
    assert breaker.get_metrics()["window_calls"] == 0
    call(breaker, clock, failed=True)
    assert breaker.state == "closed"  # 1 call: below the minimum
    breaker.reset()
    assert breaker.get_metrics()["window_calls"] == 0


def test_consecutive_failures_spelled_out_is_the_default(clock: FakeClock) -> None:
    """trip=ConsecutiveFailures(threshold=n) behaves as failure_threshold=n."""
    config = BreakerConfig(trip=ConsecutiveFailures(threshold=2))
    assert config.trip_policy == ConsecutiveFailures(threshold=2)
    breaker = CircuitBreaker("api", config, clock=clock)
    call(breaker, clock, failed=True)
    call(breaker, clock, failed=True)
    assert breaker.state == "open"
    assert breaker.get_metrics()["window_calls"] is None


def test_recovery_timeout_grows_after_failed_probes_and_resets(
    clock: FakeClock,
) -> None:
    """Each failed probe doubles the wait, up to the cap; closing resets it."""
    breaker = make(
        clock,
        failure_threshold=1,
        success_threshold=1,
        recovery_timeout=10,
        recovery_multiplier=2.0,
        max_recovery_timeout=35,
    )
    call(breaker, clock, failed=True)
    waits = []
    for _ in range(3):
        waits.append(breaker.get_metrics()["time_until_recovery"])
        clock.advance(waits[-1])
        call(breaker, clock, failed=True)  # the probe fails
    assert waits == [10.0, 20.0, 35.0]
    assert breaker.get_metrics()["time_until_recovery"] == 35.0
    clock.advance(35)
    call(breaker, clock)  # the probe succeeds: closed
    call(breaker, clock, failed=True)
    assert breaker.get_metrics()["time_until_recovery"] == 10.0


def test_a_forced_trip_does_not_grow_the_timeout(clock: FakeClock) -> None:
    """Only failed probes grow the recovery timeout."""
    breaker = make(
        clock, recovery_timeout=10, recovery_multiplier=3, max_recovery_timeout=100
    )
    breaker.trip()
    clock.advance(10)
    breaker.trip()
    assert breaker.get_metrics()["time_until_recovery"] == 10.0
    with pytest.raises(CircuitOpenError) as info:
        breaker.call_sync(print)
    assert info.value.retry_after == 10.0


# -- the count window against a naive reference -------------------------------


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 12),
    minimum=st.integers(1, 12),
    rate=st.sampled_from([0.1, 0.25, 0.5, 0.75, 1.0]),
    outcomes=st.lists(st.booleans(), max_size=80),
    decorated=st.booleans(),
    system_clock=st.booleans(),
)
def test_count_window_matches_a_naive_reference(  # noqa: PLR0917 - given by hypothesis
    size: int,
    minimum: int,
    rate: float,
    outcomes: list[bool],
    decorated: bool,
    system_clock: bool,
) -> None:
    """
    The breaker opens exactly when a list of the last N outcomes says so.

    Decorated calls on a warm window take the short path (successes counted
    in bulk), with every call timed (a fake clock) or one in 16 (the system
    clock's sampling); call_sync always takes the full path.
    """
    minimum = min(minimum, size)
    clock = FakeClock()
    breaker = CircuitBreaker(
        "api",
        BreakerConfig(
            trip=RateWindow(calls=size, minimum_calls=minimum, failure_rate=rate),
            recovery_timeout=1,
            success_threshold=1,
        ),
        clock=SystemClock() if system_clock else clock,
    )
    recent: list[bool] = []
    for failed in outcomes:
        if breaker.state == "open":
            if system_clock:
                breaker.reset()  # no waiting on the real clock
            else:
                clock.advance(1)
                call(breaker, clock)  # a good probe closes it; the window restarts
            recent = []
            continue
        call(breaker, clock, failed=failed, decorated=decorated)
        recent = [*recent, failed][-size:]
        should_open = len(recent) >= minimum and sum(recent) >= rate * len(recent)
        assert breaker.state == ("open" if should_open else "closed")
    metrics = breaker.get_metrics()
    assert (
        metrics["total_calls"] == metrics["total_successes"] + metrics["total_failures"]
    )


def test_time_window_memory_is_bounded(clock: FakeClock) -> None:
    """10^5 calls over a long stretch leave a time window's size unchanged."""
    breaker = make(
        clock, trip=RateWindow(seconds=60, minimum_calls=10, failure_rate=0.99)
    )

    def ok() -> None:
        clock.advance(0.01)

    for _ in range(1000):
        breaker.call_sync(ok)
    tracemalloc.start()
    try:
        for _ in range(10_000):
            breaker.call_sync(ok)
        after_10k = tracemalloc.get_traced_memory()[0]
        for _ in range(90_000):
            breaker.call_sync(ok)
        after_100k = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # Nothing accumulates: ten times the calls, the same memory (a few
    # swapped int objects aside).
    assert after_100k - after_10k < 512
    assert breaker.get_metrics()["window_calls"] in range(5700, 6001)


# -- validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"failure_rate": 0.5}, ValueError, "exactly one of calls="),
        ({"calls": 5, "seconds": 5, "failure_rate": 0.5}, ValueError, "exactly one"),
        ({"calls": 50}, ValueError, "needs failure_rate= or slow_call_rate="),
        (
            {"calls": 0, "failure_rate": 0.5, "minimum_calls": 1},
            ValueError,
            "calls must be >= 1",
        ),
        (
            {"calls": 5, "failure_rate": 0.5},
            ValueError,
            r"minimum_calls \(10\) must be <= calls \(5\)",
        ),
        ({"seconds": 0, "failure_rate": 0.5}, ValueError, "seconds must be between"),
        ({"seconds": -1, "failure_rate": 0.5}, ValueError, "seconds must be a finite"),
        (
            {"calls": 20, "failure_rate": 0},
            ValueError,
            r"failure_rate must be in \(0, 1\]",
        ),
        ({"calls": 20, "failure_rate": 1.5}, ValueError, "failure_rate must be in"),
        (
            {"calls": 20, "failure_rate": "50%"},
            TypeError,
            "failure_rate must be a number",
        ),
        ({"calls": 20, "slow_call_rate": 0.5}, ValueError, "go together"),
        (
            {"calls": 20, "failure_rate": 0.5, "slow_call_duration": 2},
            ValueError,
            "go together",
        ),
        (
            {"calls": 20, "minimum_calls": 0, "failure_rate": 0.5},
            ValueError,
            "minimum_calls must be >= 1",
        ),
    ],
)
def test_bad_windows_are_rejected_naming_the_field(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Each invalid RateWindow fails at construction, saying what is wrong."""
    with pytest.raises(error, match=f"RateWindow.*{message}"):
        RateWindow(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"trip": "rate"}, TypeError, "trip must be a RateWindow or Consecutive"),
        (
            {"trip": ConsecutiveFailures(threshold=3), "failure_threshold": 4},
            ValueError,
            "both say when to open",
        ),
        (
            {"recovery_multiplier": 0.5},
            ValueError,
            "recovery_multiplier must be a finite number >= 1",
        ),
        ({"recovery_multiplier": 2}, ValueError, "needs max_recovery_timeout"),
        ({"max_recovery_timeout": 100}, ValueError, "does nothing unless"),
        (
            {"recovery_multiplier": 2, "max_recovery_timeout": 30},
            ValueError,
            r"max_recovery_timeout must be >= recovery_timeout \(60.0\)",
        ),
        (
            {"recovery_multiplier": "2"},
            TypeError,
            "recovery_multiplier must be a number",
        ),
    ],
)
def test_bad_trip_settings_are_rejected(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """BreakerConfig checks its trip and recovery-growth fields."""
    with pytest.raises(error, match=f"BreakerConfig.*{message}"):
        BreakerConfig(**kwargs)
    with pytest.raises(
        TypeError, match=r"ConsecutiveFailures\.threshold must be an int"
    ):
        ConsecutiveFailures(threshold=1.5)  # type: ignore[arg-type]
