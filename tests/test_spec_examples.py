"""
Every example of the product README, run as written.

Only the dependencies the examples talk to (``payment_api``, ``httpx``,
``requests``, ``db``, ...) are stand-ins; the aiobreakers code is verbatim,
with the process-wide clock and sleeper replaced by a FakeClock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from aiobreakers import (
    BackoffStrategy,
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    RetryConfig,
    RetryPolicy,
    set_defaults,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from aiobreakers.testing import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def virtual_time(clock: FakeClock) -> Iterator[None]:
    previous = set_defaults(clock=clock, sleeper=clock)
    yield
    previous.install()


class PaymentAPI:
    def __init__(self) -> None:
        self.down = False
        self.requests: list[str] = []

    async def post(self, path: str, json: dict[str, float]) -> dict[str, Any]:
        return await self.get(path)

    async def get(self, path: str) -> dict[str, Any]:
        self.requests.append(path)
        if self.down:
            raise ConnectionError(path)
        return {"path": path}


class Response:
    def __init__(self, url: str) -> None:
        self.url = url

    async def json(self) -> dict[str, str]:
        return {"url": self.url}


class FlakyHTTPX:
    def __init__(self, failures: int) -> None:
        self.failures = failures

    def get(self, url: str) -> Response:
        if self.failures:
            self.failures -= 1
            raise TimeoutError(url)
        return Response(url)


class Requests:
    def get(self, path: str) -> str:
        return f"GET {path}"


class DB:
    def query(self, sql: str) -> list[int]:
        return [1]


async def test_breaker_quick_start(clock: FakeClock) -> None:
    """Decorator, async with and call_async, then tripping after 3 failures."""
    payment_api = PaymentAPI()

    breaker = CircuitBreaker(
        "payment-api",
        BreakerConfig(
            failure_threshold=3,  # Trip after 3 consecutive failures
            recovery_timeout=30.0,  # Wait 30s before probing
            success_threshold=2,  # 2 successes in half-open to close
        ),
    )

    # As a decorator
    @breaker
    async def charge(amount: float) -> dict[str, Any]:
        return await payment_api.post("/charge", json={"amount": amount})

    # As a context manager
    async with breaker:
        result = await payment_api.get("/status")

    # Programmatic
    result = await breaker.call_async(payment_api.get, "/health")

    assert result == {"path": "/health"}
    assert await charge(10.0) == {"path": "/charge"}

    payment_api.down = True
    for _ in range(3):
        with pytest.raises(ConnectionError):
            await charge(10.0)
    with pytest.raises(CircuitOpenError) as info:
        await charge(10.0)
    assert (info.value.name, info.value.retry_after) == ("payment-api", 30.0)

    payment_api.down = False
    clock.advance(30)
    await charge(1.0)
    assert breaker.state == "half_open"
    await charge(1.0)
    assert breaker.state == "closed"


async def test_retry_quick_start(clock: FakeClock) -> None:
    """The fetch_data example retries timeouts with full-jitter delays."""
    httpx = FlakyHTTPX(failures=2)

    retry = RetryPolicy(
        "api-retry",
        RetryConfig(
            max_retries=3,
            base_delay=1.0,
            max_delay=30.0,
            strategy=BackoffStrategy.FULL_JITTER,
            retryable_exceptions=(ConnectionError, TimeoutError),
        ),
    )

    @retry
    async def fetch_data(url: str) -> dict[str, str]:
        return await httpx.get(url).json()

    assert await fetch_data("https://example.test/") == {"url": "https://example.test/"}
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 1.0
    assert 0 <= clock.sleeps[1] <= 2.0


async def test_retry_over_breaker(clock: FakeClock) -> None:
    """When the breaker trips, retry stops at once instead of wasting attempts."""
    api = PaymentAPI()
    api.down = True

    retry = RetryPolicy(
        "api-retry",
        RetryConfig(
            max_retries=2,
            base_delay=0.5,
            retryable_exceptions=(ConnectionError, TimeoutError),
        ),
    )
    breaker = CircuitBreaker("api", BreakerConfig(failure_threshold=5))

    @retry  # Outer: retries on transient errors
    @breaker  # Inner: tracks failures, trips when threshold hit
    async def resilient_call(endpoint: str) -> dict[str, Any]:
        return await api.get(endpoint)

    with pytest.raises(ConnectionError):
        await resilient_call("/a")  # 3 attempts, 3 failures
    with pytest.raises(CircuitOpenError):
        await resilient_call("/b")  # 2 more failures trip it; then no retry
    assert len(api.requests) == 5
    assert retry.get_metrics()["total_retries"] == 4


def test_hooks(clock: FakeClock) -> None:
    """The hook examples register and fire with the breaker / retry details."""
    alerts: list[str] = []
    logs: list[str] = []
    recorded: list[str] = []

    def alert(message: str) -> None:
        alerts.append(message)

    def log(message: str) -> None:
        logs.append(message)

    class Metrics:
        def record(self, what: str) -> None:
            recorded.append(what)

    metrics = Metrics()

    # Circuit breaker hooks
    breaker = CircuitBreaker("api")
    breaker.on_open(lambda b: alert(f"{b.name} tripped!"))
    breaker.on_close(lambda b: log(f"{b.name} recovered"))
    breaker.on_half_open(lambda b: log(f"{b.name} probing"))
    breaker.on_success(lambda b: metrics.record("success"))
    breaker.on_failure(lambda b: metrics.record("failure"))

    # Retry hooks
    retry = RetryPolicy("api-retry")
    retry.on_retry(
        lambda attempt, err, delay: log(f"Retry {attempt}: {err}, waiting {delay:.1f}s")
    )

    breaker.call_sync(len, "x")
    breaker.trip()
    clock.advance(60)
    assert breaker.state == "half_open"
    for _ in range(3):
        breaker.call_sync(len, "x")
    flaky = FlakyHTTPX(failures=1)
    retry.call_sync(flaky.get, "/x")

    assert alerts == ["api tripped!"]
    assert logs[:2] == ["api probing", "api recovered"]
    assert logs[2].startswith("Retry 1: /x, waiting ")
    assert recorded == ["success"] * 4


def test_metrics_keys(clock: FakeClock) -> None:
    """get_metrics returns the spec's keys for breakers and retries."""
    breaker = CircuitBreaker("api")
    retry = RetryPolicy("api-retry")
    assert set(breaker.get_metrics()) >= {
        "name",
        "state",
        "total_calls",
        "total_successes",
        "total_failures",
        "total_rejected",
        "total_trips",
        "success_rate",
        "failure_rate",
        "avg_call_duration_ms",
        "time_until_recovery",
    }
    assert breaker.get_metrics()["state"] == "closed"
    metrics = retry.get_metrics()
    assert {"name", "total_retries", "total_exhausted", "config"} <= set(metrics)
    assert metrics["config"]["max_retries"] == 3


def test_exception_filters(clock: FakeClock) -> None:
    """included / excluded exceptions and retryable / non-retryable filters."""

    class AuthenticationError(Exception):
        pass

    # Only trip on these specific errors
    breaker = CircuitBreaker(
        "api",
        BreakerConfig(
            included_exceptions=(ConnectionError, TimeoutError),
        ),
    )
    assert breaker.config.counts_as_failure(TimeoutError())
    assert not breaker.config.counts_as_failure(ValueError())

    # Trip on everything EXCEPT these
    breaker = CircuitBreaker(
        "api",
        BreakerConfig(
            excluded_exceptions=(ValueError, KeyError),
        ),
    )
    assert not breaker.config.counts_as_failure(KeyError())

    # Only retry on these errors
    retry = RetryPolicy(
        "api",
        RetryConfig(
            retryable_exceptions=(ConnectionError, TimeoutError),
        ),
    )
    assert not retry.config.should_retry(ValueError())

    # Never retry on these (takes precedence)
    retry = RetryPolicy(
        "api",
        RetryConfig(
            non_retryable_exceptions=(AuthenticationError,),
        ),
    )
    assert not retry.config.should_retry(AuthenticationError())
    assert retry.config.should_retry(ValueError())


def test_manual_control(clock: FakeClock) -> None:
    """trip() force-opens; reset() force-closes and zeroes the counters."""
    breaker = CircuitBreaker("api")
    breaker.trip()  # Force-open the circuit
    assert breaker.state == "open"
    breaker.reset()  # Force-close and reset all counters
    assert breaker.get_metrics()["total_trips"] == 0
    assert breaker.state == "closed"


def test_sync_usage(clock: FakeClock) -> None:
    """Every API works without asyncio."""
    requests, db = Requests(), DB()
    breaker = CircuitBreaker("api")
    retry = RetryPolicy("api-retry")

    @breaker
    def sync_function() -> str:
        return requests.get("/api")

    with breaker:
        result: Any = db.query("SELECT 1")
    assert result == [1]

    result = retry.call_sync(requests.get, "/api")
    assert result == "GET /api"
    assert sync_function() == "GET /api"
    assert breaker.get_metrics()["total_calls"] == 2
