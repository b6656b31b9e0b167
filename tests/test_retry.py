"""Retry policies through their public API, on a fake clock."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from aiobreakers import (
    BackoffStrategy,
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    HookFailed,
    RetryConfig,
    RetryExhausted,
    RetryPolicy,
    RetryScheduled,
)
from aiobreakers.testing import FakeClock, FakeRandom, Spy

pytestmark = pytest.mark.anyio


class Flaky:
    """A dependency that raises the scripted errors, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, *args: object) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    async def async_call(self, *args: object) -> str:
        return self(*args)


def policy(clock: FakeClock, sink: Spy | None = None, **config: Any) -> RetryPolicy:
    config.setdefault("strategy", BackoffStrategy.EXPONENTIAL)
    return RetryPolicy(
        "api", RetryConfig(**config), sleeper=clock, clock=clock, sink=sink
    )


def test_retries_until_success_with_exact_delays(clock: FakeClock) -> None:
    """Each retry waits the strategy's delay on the injected sleeper."""
    flaky = Flaky(ConnectionError(), ConnectionError())
    assert policy(clock, base_delay=1).call_sync(flaky) == "ok"
    assert flaky.calls == 3
    assert clock.sleeps == [1.0, 2.0]
    assert clock.monotonic() == 3.0


async def test_async_retries_until_success(clock: FakeClock) -> None:
    """Async calls retry with await on the sleeper."""
    flaky = Flaky(TimeoutError(), TimeoutError(), TimeoutError())
    retry = policy(clock, base_delay=0.5, max_retries=3)
    assert await retry.call_async(flaky.async_call) == "ok"
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_max_retries_bounds_the_attempts(clock: FakeClock) -> None:
    """max_retries=n means at most n + 1 attempts; the last error is re-raised."""
    errors = [ConnectionError(i) for i in range(5)]
    flaky = Flaky(*errors)
    with pytest.raises(ConnectionError) as info:
        policy(clock, max_retries=2).call_sync(flaky)
    assert info.value is errors[2]
    assert flaky.calls == 3


def test_exhaustion_keeps_the_last_error_free_of_chaining(clock: FakeClock) -> None:
    """The re-raised error is the attempt's own, with no implicit context added."""
    errors = [ConnectionError("first"), ConnectionError("second")]
    with pytest.raises(ConnectionError) as info:
        policy(clock, max_retries=1).call_sync(Flaky(*errors))
    assert info.value is errors[1]
    assert info.value.__context__ is None


def test_zero_retries_means_one_attempt(clock: FakeClock) -> None:
    """max_retries=0 never retries and never sleeps."""
    flaky = Flaky(ConnectionError())
    with pytest.raises(ConnectionError):
        policy(clock, max_retries=0).call_sync(flaky)
    assert (flaky.calls, clock.sleeps) == (1, [])


def test_zero_delay_never_sleeps(clock: FakeClock) -> None:
    """A zero delay retries at once, without calling the sleeper."""
    flaky = Flaky(ConnectionError(), ConnectionError())
    assert policy(clock, base_delay=0, max_delay=0).call_sync(flaky) == "ok"
    assert clock.sleeps == []


def test_jittered_delays_are_exact_with_fake_random(clock: FakeClock) -> None:
    """FULL_JITTER with FakeRandom(0.25) waits a quarter of each cap."""
    retry = RetryPolicy(
        "api",
        RetryConfig(max_retries=3, base_delay=1, strategy=BackoffStrategy.FULL_JITTER),
        sleeper=clock,
        random=FakeRandom(0.25),
    )
    with pytest.raises(ConnectionError):
        retry.call_sync(Flaky(*[ConnectionError()] * 4))
    assert clock.sleeps == [0.25, 0.5, 1.0]


def test_decorrelated_state_is_per_call(clock: FakeClock) -> None:
    """Each protected call's decorrelated sequence starts from base_delay."""
    retry = policy(
        clock, base_delay=1, max_retries=2, strategy=BackoffStrategy.DECORRELATED
    )
    retry = RetryPolicy("api", retry.config, sleeper=clock, random=FakeRandom(1.0))
    for _ in range(2):
        with pytest.raises(ConnectionError):
            retry.call_sync(Flaky(*[ConnectionError()] * 3))
    assert clock.sleeps == [3.0, 9.0, 3.0, 9.0]


# -- what is retried ----------------------------------------------------------


class AuthenticationError(Exception):
    pass


@pytest.mark.parametrize(
    ("config", "error", "retried"),
    [
        ({}, ValueError(), True),
        ({"retryable_exceptions": (ConnectionError,)}, ConnectionResetError(), True),
        ({"retryable_exceptions": (ConnectionError,)}, ValueError(), False),
        (
            {"non_retryable_exceptions": (AuthenticationError,)},
            AuthenticationError(),
            False,
        ),
        (
            {
                "retryable_exceptions": (Exception,),
                "non_retryable_exceptions": (ValueError,),
            },
            ValueError(),
            False,
        ),
        ({}, CircuitOpenError("x", 1.0), False),
        ({"retryable_exceptions": (Exception,)}, CircuitOpenError("x", 1.0), False),
        (
            {"retryable_exceptions": (CircuitOpenError,)},
            CircuitOpenError("x", 1.0),
            True,
        ),
    ],
)
def test_which_errors_are_retried(
    clock: FakeClock, config: dict[str, Any], error: Exception, retried: bool
) -> None:
    """Filters decide; non-retryable wins; an open circuit needs naming itself."""
    flaky = Flaky(error)
    retry = policy(clock, **config)
    if retried:
        assert retry.call_sync(flaky) == "ok"
    else:
        with pytest.raises(type(error)):
            retry.call_sync(flaky)
    assert flaky.calls == (2 if retried else 1)


def test_base_exceptions_are_never_retried(clock: FakeClock) -> None:
    """KeyboardInterrupt and friends propagate at once, without sleeping."""
    flaky = Flaky(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        policy(clock).call_sync(flaky)
    assert (flaky.calls, clock.sleeps) == (1, [])


async def test_cancellation_during_the_call_is_not_retried(clock: FakeClock) -> None:
    """A cancelled attempt ends the call: no retry, no sleep."""
    attempts = 0
    outcomes: list[str] = []

    async def hang() -> None:
        nonlocal attempts
        attempts += 1
        await anyio.sleep_forever()

    async def call() -> None:
        try:
            await policy(clock).call_async(hang)
        except anyio.get_cancelled_exc_class():
            outcomes.append("cancelled")
            raise

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        group.cancel_scope.cancel()
    assert outcomes == ["cancelled"]
    assert (attempts, clock.sleeps) == (1, [])


async def test_cancellation_during_the_backoff_sleep_stops_retrying(
    clock: FakeClock,
) -> None:
    """Cancelling while the policy sleeps stops it: no further attempt."""
    flaky = Flaky(ConnectionError())
    sleeping = anyio.Event()
    outcomes: list[str] = []

    class BlockingSleeper:
        async def sleep_async(self, seconds: float) -> None:
            sleeping.set()
            await anyio.sleep_forever()

        def sleep_sync(self, seconds: float) -> None:
            raise AssertionError

    retry = RetryPolicy("api", sleeper=BlockingSleeper())

    async def call() -> None:
        try:
            await retry.call_async(flaky.async_call)
        except anyio.get_cancelled_exc_class():
            outcomes.append("cancelled")
            raise

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        await sleeping.wait()
        group.cancel_scope.cancel()
    assert outcomes == ["cancelled"]
    assert flaky.calls == 1
    assert retry.get_metrics()["total_failures"] == 0


# -- hooks, events, metrics ---------------------------------------------------


def test_on_retry_gets_attempt_error_and_delay(clock: FakeClock) -> None:
    """on_retry(attempt, error, delay) runs before each retry, in order."""
    errors = [ConnectionError(1), ConnectionError(2)]
    retry = policy(clock, base_delay=1)
    seen: list[tuple[int, Exception, float]] = []
    retry.on_retry(lambda attempt, err, delay: seen.append((attempt, err, delay)))
    retry.call_sync(Flaky(*errors))
    assert seen == [(1, errors[0], 1.0), (2, errors[1], 2.0)]


async def test_async_on_retry_hooks_are_scheduled(clock: FakeClock) -> None:
    """An async on_retry callback runs as a task on the loop."""
    retry = policy(clock, base_delay=0, max_delay=0)
    seen: list[int] = []

    async def hook(attempt: int, error: Exception, delay: float) -> None:
        seen.append(attempt)

    retry.on_retry(hook)
    assert await retry.call_async(Flaky(ConnectionError()).async_call) == "ok"
    await anyio.wait_all_tasks_blocked()
    assert seen == [1]


def test_a_raising_retry_hook_is_reported(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing on_retry hook never stops the retry."""
    sink = Spy()
    retry = policy(clock, sink)
    bug = RuntimeError("hook bug")

    def hook(attempt: int, error: Exception, delay: float) -> None:
        raise bug

    retry.on_retry(hook)
    with caplog.at_level(logging.ERROR, logger="aiobreakers"):
        assert retry.call_sync(Flaky(ConnectionError())) == "ok"
    assert HookFailed(name="api", hook="on_retry", error=bug) in sink.events


def test_events_describe_retries_and_exhaustion(clock: FakeClock) -> None:
    """RetryScheduled per retry, RetryExhausted when retries run out."""
    sink = Spy()
    errors = [ConnectionError(i) for i in range(3)]
    retry = policy(clock, sink, max_retries=2, base_delay=1)
    with pytest.raises(ConnectionError):
        retry.call_sync(Flaky(*errors))
    assert sink.events == [
        RetryScheduled(name="api", attempt=1, error=errors[0], delay=1.0),
        RetryScheduled(name="api", attempt=2, error=errors[1], delay=2.0),
        RetryExhausted(name="api", attempts=3, error=errors[2], elapsed=3.0),
    ]


def test_metrics_count_calls_retries_and_outcomes(clock: FakeClock) -> None:
    """get_metrics counts calls, successes, failures, retries and exhaustion."""
    retry = policy(clock, max_retries=1, retryable_exceptions=(ConnectionError,))
    retry.call_sync(Flaky())
    retry.call_sync(Flaky(ConnectionError()))
    with pytest.raises(ConnectionError):
        retry.call_sync(Flaky(ConnectionError(), ConnectionError()))
    with pytest.raises(ValueError):
        retry.call_sync(Flaky(ValueError()))
    metrics = retry.get_metrics()
    config = metrics.pop("config")  # type: ignore[misc]
    assert metrics == {
        "name": "api",
        "total_calls": 4,
        "total_successes": 2,
        "total_failures": 2,
        "total_retries": 2,
        "total_exhausted": 1,
        "budget_balance": None,
        "budget_refusals": None,
    }
    assert config == {
        "max_retries": 1,
        "base_delay": 1.0,
        "max_delay": 60.0,
        "strategy": "exponential",
        "retryable_exceptions": ["builtins.ConnectionError"],
        "non_retryable_exceptions": [],
        "deadline": None,
        "attempt_timeout": None,
        "retry_on_result": None,
        "delay_from": None,
    }


# -- decorating ---------------------------------------------------------------


async def test_decorates_functions_and_methods(clock: FakeClock) -> None:
    """The decorator keeps names and works on sync and async methods."""
    retry = policy(clock, base_delay=0, max_delay=0)
    flaky = Flaky(ConnectionError(), ConnectionError())

    class Client:
        @retry
        async def fetch(self, url: str) -> str:
            return flaky(url)

        @retry
        def fetch_sync(self, url: str) -> str:
            return flaky(url)

    assert await Client().fetch("/a") == "ok"
    flaky.errors = [ConnectionError()]
    assert Client().fetch_sync("/b") == "ok"
    assert Client.fetch.__name__ == "fetch"
    assert flaky.calls == 5


def test_rejects_generators_and_non_callables(clock: FakeClock) -> None:
    """Decorating a generator function or a non-callable is a TypeError."""
    retry = policy(clock)

    def numbers() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator function"):
        retry(numbers)
    with pytest.raises(TypeError, match="decorates callables"):
        retry(3)  # type: ignore[call-overload]


# -- with a breaker -----------------------------------------------------------


def test_retry_over_breaker_stops_when_the_circuit_opens(clock: FakeClock) -> None:
    """@retry over @breaker: CircuitOpenError is not retried."""
    breaker = CircuitBreaker("api", BreakerConfig(failure_threshold=2), clock=clock)
    retry = policy(clock, max_retries=5, retryable_exceptions=(ConnectionError,))
    flaky = Flaky(*[ConnectionError()] * 10)

    @retry
    @breaker
    def call() -> str:
        return flaky()

    with pytest.raises(CircuitOpenError):
        call()
    assert flaky.calls == 2
    assert retry.get_metrics()["total_retries"] == 2


async def test_breaker_over_retry_counts_one_failure_per_sequence(
    clock: FakeClock,
) -> None:
    """@breaker over @retry: an exhausted sequence is one failure."""
    breaker = CircuitBreaker("api", BreakerConfig(failure_threshold=2), clock=clock)
    retry = policy(clock, max_retries=2, base_delay=0, max_delay=0)
    flaky = Flaky(*[ConnectionError()] * 10)

    @breaker
    @retry
    async def call() -> str:
        return await flaky.async_call()

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await call()
    assert flaky.calls == 6
    assert breaker.get_metrics()["total_failures"] == 2
    assert breaker.state == "open"


# -- construction -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("max_retries", -1, ValueError, "max_retries must be >= 0, got -1"),
        ("max_retries", 1.5, TypeError, "max_retries must be an int"),
        ("base_delay", -1, ValueError, "base_delay must be a finite number >= 0"),
        ("max_delay", float("inf"), ValueError, "max_delay must be a finite"),
        ("max_delay", 0.5, ValueError, r"max_delay must be >= base_delay \(1.0\)"),
        ("strategy", "full_jitter", TypeError, "strategy must be one of"),
        ("retryable_exceptions", (str,), ValueError, "retryable_exceptions must hold"),
        ("non_retryable_exceptions", ValueError, TypeError, "non_retryable_exc"),
    ],
)
def test_bad_config_is_rejected_naming_the_field(
    field: str, value: object, error: type[Exception], message: str
) -> None:
    """Each invalid field fails at construction with a message naming it."""
    with pytest.raises(error, match=f"RetryConfig.{message}"):
        RetryConfig(**{field: value})  # type: ignore[arg-type]


def test_config_defaults_match_the_spec() -> None:
    """RetryConfig() and RetryPolicy() have the documented defaults."""
    assert RetryConfig().as_dict() == {
        "max_retries": 3,
        "base_delay": 1.0,
        "max_delay": 60.0,
        "strategy": "full_jitter",
        "retryable_exceptions": [],
        "non_retryable_exceptions": [],
        "deadline": None,
        "attempt_timeout": None,
        "retry_on_result": None,
        "delay_from": None,
    }
    assert RetryPolicy().name == "retry"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": ""}, ValueError, "name must not be empty"),
        ({"config": RetryConfig}, TypeError, "config must be a RetryConfig"),
        ({"sleeper": FakeRandom()}, TypeError, "sleeper must implement the Sleeper"),
        ({"random": FakeClock()}, TypeError, "random must implement the RandomSource"),
    ],
)
def test_bad_policy_arguments_are_rejected(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Wrong constructor arguments fail with a message naming them."""
    with pytest.raises(error, match=message):
        RetryPolicy(**kwargs)


def test_repr_names_the_policy() -> None:
    """repr shows name and retry count."""
    assert repr(RetryPolicy("db")) == "<RetryPolicy 'db' max_retries=3>"


def test_reset_zeroes_the_counters(clock: FakeClock) -> None:
    """reset() clears every counter but keeps the configuration."""
    retry = policy(clock, max_retries=1)
    retry.call_sync(Flaky(ConnectionError()))
    retry.reset()
    metrics = retry.get_metrics()
    assert [metrics[k] for k in ("total_calls", "total_retries")] == [0, 0]
    assert metrics["config"]["max_retries"] == 1
