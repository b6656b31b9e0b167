"""
The examples of docs/testing.rst: tests of a small app, with the pytest plugin.

pytest runs this file (``testpaths`` includes ``docs``) and mypy checks it, so
the guide's examples are known to pass and to type-check.
"""

from __future__ import annotations

import pytest

from aiobreakers import (
    BackoffStrategy,
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    RetryConfig,
    RetryPolicy,
)
from aiobreakers.testing import BreakerSpy, FakeClock, FakeRandom, RetrySpy, fakes

# anyio's pytest plugin runs the async tests, under asyncio and under trio
# (the anyio_backend fixture in this project's conftest.py).
pytestmark = pytest.mark.anyio

# --- the application under test (built at import time, no ports injected) ---


class Inventory:
    """The dependency: fails while ``down``."""

    def __init__(self) -> None:
        self.down = False

    async def count(self, item: str) -> int:
        if self.down:
            raise ConnectionError(item)
        return 7


inventory = Inventory()
retry = RetryPolicy(
    "inventory-retry",
    RetryConfig(
        max_retries=3,
        base_delay=1.0,
        strategy=BackoffStrategy.FULL_JITTER,
        retryable_exceptions=(ConnectionError,),
    ),
)
breaker = CircuitBreaker(
    "inventory", BreakerConfig(failure_threshold=4, recovery_timeout=30.0)
)


@retry
@breaker
async def stock(item: str) -> int:
    """Ask the inventory, with retries over a breaker."""
    return await inventory.count(item)


@pytest.fixture(autouse=True)
def fresh_state() -> None:
    """Each test starts with a healthy inventory and a closed breaker."""
    inventory.down = False
    breaker.reset()


# --- the tests ---


@pytest.mark.usefixtures("fake_random")  # jitter: the middle of each range
async def test_retries_back_off_without_sleeping(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """Three retries wait 0.5, 1 and 2 virtual seconds: the middle of each range."""
    inventory.down = True
    with pytest.raises(ConnectionError):
        await stock("widget")
    retry_spy.assert_attempts("inventory-retry", [1, 2, 3])
    retry_spy.assert_delays("inventory-retry", [0.5, 1.0, 2.0])
    retry_spy.assert_exhausted("inventory-retry")
    assert fake_clock.monotonic() == 3.5  # virtual seconds; no real time passed


@pytest.mark.usefixtures("fake_random")
async def test_breaker_opens_then_recovers(
    fake_clock: FakeClock, breaker_spy: BreakerSpy
) -> None:
    """Four failed attempts open it; 30 s later a probe goes through."""
    inventory.down = True
    with pytest.raises(ConnectionError):
        await stock("widget")  # attempts 1-4 fail; the 4th trips the breaker
    with pytest.raises(CircuitOpenError):
        await stock("widget")  # rejected at once, and never retried
    breaker_spy.assert_tripped("inventory")
    breaker_spy.assert_calls("inventory", failures=4, rejected=1)

    inventory.down = False
    fake_clock.advance(30)
    assert await stock("widget") == 7
    breaker_spy.assert_transitions(
        "inventory", ("closed", "open"), ("open", "half_open")
    )


async def test_scripted_jitter(
    fake_clock: FakeClock, fake_random: FakeRandom, retry_spy: RetrySpy
) -> None:
    """fake_random.set scripts the fraction of each jitter draw, in order."""
    fake_random.set([0.0, 1.0, 0.5])  # low end, high end, middle
    inventory.down = True
    with pytest.raises(ConnectionError):
        await retry.call_async(inventory.count, "widget")
    retry_spy.assert_delays("inventory-retry", [0.0, 2.0, 2.0])
    assert fake_clock.sleeps == [2.0, 2.0]  # a zero delay never sleeps


def test_without_pytest_fixtures() -> None:
    """fakes() installs everything at once, for unittest or scripts."""
    with fakes() as fake:
        breaker.trip()
        fake.clock.advance(30)
        assert breaker.state == "half_open"
        fake.breakers.assert_transitions(
            "inventory", ("closed", "open"), ("open", "half_open")
        )
