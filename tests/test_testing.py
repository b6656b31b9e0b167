"""The testing toolkit: FakeClock, FakeRandom, spies and fakes()."""

from __future__ import annotations

import gc
from typing import Any

import anyio
import pytest

from aiobreakers import (
    BackoffStrategy,
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    RetryConfig,
    RetryPolicy,
    get_defaults,
)
from aiobreakers.testing import (
    BreakerRegistry,
    BreakerSpy,
    FakeClock,
    FakeRandom,
    RetrySpy,
    fakes,
    track_breakers,
)

pytestmark = pytest.mark.anyio

# -- FakeClock ----------------------------------------------------------------


def test_fake_clock_starts_at_zero_and_advances() -> None:
    """advance moves time forward and returns the new reading."""
    clock = FakeClock()
    assert clock.monotonic() == 0.0
    assert clock.advance(1.5) == 1.5
    assert clock.monotonic() == 1.5
    assert FakeClock(start=10).monotonic() == 10


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_fake_clock_refuses_to_go_backwards(bad: float) -> None:
    """Negative or non-finite advances are a ValueError."""
    with pytest.raises(ValueError, match="seconds must be a finite number >= 0"):
        FakeClock().advance(bad)


def test_sync_sleeps_are_instant_and_recorded() -> None:
    """sleep_sync records the delay and moves virtual time."""
    clock = FakeClock()
    clock.sleep_sync(2)
    clock.sleep_sync(0.5)
    assert clock.sleeps == [2, 0.5]
    assert clock.monotonic() == 2.5


async def test_concurrent_async_sleeps_wake_in_deadline_order() -> None:
    """Tasks sleeping 5, 1 and 3 s finish in the order 1, 3, 5; clock ends at 5."""
    clock = FakeClock()
    woke: list[tuple[float, float]] = []

    async def nap(seconds: float) -> None:
        await clock.sleep_async(seconds)
        woke.append((seconds, clock.monotonic()))

    async with anyio.create_task_group() as group:
        for seconds in (5, 1, 3):
            group.start_soon(nap, seconds)
    assert woke == [(1, 1.0), (3, 3.0), (5, 5.0)]
    assert sorted(clock.sleeps) == [1, 3, 5]  # trio starts tasks in any order


async def test_chained_async_sleeps_interleave_by_deadline() -> None:
    """A task that sleeps again is woken in order with the others."""
    clock = FakeClock()
    woke: list[str] = []

    async def twice(name: str, first: float, second: float) -> None:
        await clock.sleep_async(first)
        woke.append(f"{name}@{clock.monotonic():g}")
        await clock.sleep_async(second)
        woke.append(f"{name}@{clock.monotonic():g}")

    async with anyio.create_task_group() as group:
        group.start_soon(twice, "a", 1, 5)
        group.start_soon(twice, "b", 2, 1)
    assert woke == ["a@1", "b@2", "b@3", "a@6"]


async def test_a_cancelled_sleeper_does_not_move_time() -> None:
    """Cancelling a sleeping task removes its deadline."""
    clock = FakeClock()
    sleeping = anyio.Event()

    async def sleep_long() -> None:
        sleeping.set()  # the sleep starts before this task lets others run
        await clock.sleep_async(100)

    async with anyio.create_task_group() as group:
        group.start_soon(sleep_long)
        await sleeping.wait()
        group.cancel_scope.cancel()
    assert clock.sleeps == [100]
    await clock.sleep_async(1)
    assert clock.monotonic() == 1.0


# -- FakeRandom ---------------------------------------------------------------


def test_fake_random_maps_fractions_onto_the_range() -> None:
    """FakeRandom(0.25).uniform(0, 8) == 2.0, and draws are recorded."""
    random = FakeRandom(0.25)
    assert random.uniform(0, 8) == 2.0
    assert random.uniform(4, 8) == 5.0
    assert random.draws == [(0, 8, 2.0), (4, 8, 5.0)]


def test_fake_random_scripts_draws_in_order() -> None:
    """A sequence of fractions is used one per draw, then runs out loudly."""
    random = FakeRandom([0.0, 1.0])
    assert [random.uniform(0, 10), random.uniform(0, 10)] == [0.0, 10.0]
    with pytest.raises(LookupError, match="ran out of scripted fractions after 2"):
        random.uniform(0, 10)
    random.set(0.5)
    assert random.uniform(0, 10) == 5.0


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_fake_random_fractions_lie_between_0_and_1(bad: float) -> None:
    """A fraction outside [0, 1] is a ValueError."""
    with pytest.raises(ValueError, match="between 0 and 1"):
        FakeRandom(bad)


# -- spies --------------------------------------------------------------------


def trip_and_recover(breaker: CircuitBreaker[..., Any], clock: FakeClock) -> None:
    def boom() -> None:
        raise ConnectionError

    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call_sync(boom)
    with pytest.raises(CircuitOpenError):
        breaker.call_sync(print)
    clock.advance(10)
    breaker.call_sync(lambda: None)


def test_breaker_spy_reports_transitions_and_counts(clock: FakeClock) -> None:
    """BreakerSpy answers per breaker: transitions, calls, failures, rejections."""
    spy = BreakerSpy()
    config = BreakerConfig(
        failure_threshold=2, recovery_timeout=10, success_threshold=1
    )
    breaker = CircuitBreaker("api", config, sink=spy)
    CircuitBreaker("other", sink=spy).call_sync(lambda: None)
    trip_and_recover(breaker, clock)
    assert spy.transitions("api") == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert (spy.calls("api"), spy.failures("api"), spy.rejections("api")) == (3, 2, 1)
    assert spy.calls("other") == 1
    spy.assert_transitions(
        "api", ("closed", "open"), ("open", "half_open"), ("half_open", "closed")
    )
    spy.assert_calls("api", successes=1, failures=2, rejected=1)
    spy.assert_tripped("api")


def test_breaker_spy_assertions_explain_failures(clock: FakeClock) -> None:
    """A failed spy assertion says what happened and lists the events."""
    spy = BreakerSpy()
    breaker = CircuitBreaker("api", sink=spy)
    breaker.trip()
    with pytest.raises(AssertionError) as info:
        spy.assert_transitions("api", ("closed", "half_open"))
    message = str(info.value)
    assert message.startswith(
        "breaker 'api' went through [closed -> open], expected [closed -> half_open]"
    )
    assert "StateChanged(name='api'" in message
    with pytest.raises(AssertionError, match=r"had failures=0 \(expected 3\)"):
        spy.assert_calls("api", failures=3)
    with pytest.raises(AssertionError, match="opened 1 time"):
        spy.assert_tripped("api", times=2)


def test_retry_spy_reports_attempts_and_delays(clock: FakeClock) -> None:
    """RetrySpy lists the retries, their delays, and exhaustion."""
    spy = RetrySpy()
    config = RetryConfig(max_retries=2, strategy=BackoffStrategy.EXPONENTIAL)
    retry = RetryPolicy("api", config, sink=spy)

    def boom() -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        retry.call_sync(boom)
    assert spy.attempts("api") == [1, 2]
    assert spy.delays("api") == [1.0, 2.0]
    spy.assert_delays("api", [1.0, 2.0])
    spy.assert_attempts("api", [1, 2])
    spy.assert_exhausted("api")
    with pytest.raises(AssertionError, match=r"waited \[1.0, 2.0\], expected \[1.0\]"):
        spy.assert_delays("api", [1.0])


def test_spies_install_as_context_managers(clock: FakeClock) -> None:
    """with spy: records every breaker's events, then stops."""
    breaker = CircuitBreaker("api")
    with BreakerSpy() as spy:
        breaker.trip()
    breaker.reset()
    assert spy.transitions("api") == [("closed", "open")]
    assert get_defaults().sink is None


# -- fakes() ------------------------------------------------------------------


def test_fakes_install_and_restore_defaults() -> None:
    """fakes() swaps every default for its block and restores them, nesting."""
    before = get_defaults()
    with fakes() as outer:
        assert get_defaults().clock is outer.clock
        with fakes() as inner:
            assert get_defaults().clock is inner.clock
        assert get_defaults().clock is outer.clock
    assert get_defaults() == before


def test_fakes_restore_defaults_when_the_block_raises() -> None:
    """Defaults come back even if the block fails."""
    before = get_defaults()
    with pytest.raises(RuntimeError), fakes():
        raise RuntimeError
    assert get_defaults() == before


async def test_fakes_drive_objects_built_before_them() -> None:
    """A policy built before fakes() sleeps on the fake clock inside it."""
    retry = RetryPolicy("api", RetryConfig(max_retries=1, base_delay=2))

    async def boom() -> None:
        raise ConnectionError

    with fakes() as fake:
        with pytest.raises(ConnectionError):
            await retry.call_async(boom)
        fake.retries.assert_delays("api", [1.0])  # FULL_JITTER, half of 2 s
        assert fake.clock.monotonic() == 1.0


# -- the registry -------------------------------------------------------------


def test_registry_finds_breakers_by_name_and_forces_state(clock: FakeClock) -> None:
    """force() opens, half-opens and closes a named breaker; spies hear it."""
    registry = BreakerRegistry()
    breaker = CircuitBreaker("registry-payments", BreakerConfig(recovery_timeout=60))
    assert registry["registry-payments"] is breaker
    with BreakerSpy() as spy:
        assert registry.force("registry-payments", "open") is breaker
        assert breaker.state == "open"
        registry.force("registry-payments", CircuitState.HALF_OPEN)
        assert breaker.call_sync(len, "probe") == 5
        registry.force("registry-payments", "closed")
    assert spy.transitions("registry-payments") == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert spy.events[0].reason == "forced"  # type: ignore[union-attr]


def test_registry_explains_what_it_cannot_find() -> None:
    """Unknown and ambiguous names, and bad states, say what is wrong."""
    registry = BreakerRegistry()
    twins = [CircuitBreaker("registry-twin") for _ in range(2)]
    with pytest.raises(LookupError, match="no live circuit breaker is called 'nope'"):
        registry["nope"]
    with pytest.raises(LookupError, match="2 live circuit breakers are called"):
        registry["registry-twin"]
    assert set(registry.named("registry-twin")) == set(twins)
    with pytest.raises(ValueError, match="state must be one of"):
        registry.force("registry-twin", "ajar")


def test_registry_forgets_breakers_nobody_keeps() -> None:
    """Breakers are held weakly."""
    CircuitBreaker("registry-ephemeral")
    gc.collect()
    assert BreakerRegistry().named("registry-ephemeral") == []


def test_the_registry_knows_breakers_made_before_anyone_asked() -> None:
    """No tracking to start: a breaker is known from the moment it is made."""
    breaker = CircuitBreaker("registry-early")
    assert BreakerRegistry()["registry-early"] is breaker
    assert breaker in BreakerRegistry()


def test_track_breakers_is_a_deprecated_no_op() -> None:
    """Code written for the old opt-in tracking still runs, and is told why."""
    with pytest.warns(DeprecationWarning, match="track_breakers\\(\\) is no longer"):
        track_breakers()


def test_reset_all_closes_every_breaker(clock: FakeClock) -> None:
    """reset_all() closes and zeroes every live breaker."""
    kept = [CircuitBreaker(f"registry-reset-{i}") for i in range(3)]
    for breaker in kept:
        breaker.trip()
    BreakerRegistry().reset_all()
    assert [b.state for b in kept] == ["closed"] * 3
    assert all(b.get_metrics()["total_trips"] == 0 for b in kept)
