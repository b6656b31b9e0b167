"""
What is particular to trio and anyio; the rest of the suite runs under both.

Every async test of the suite (``pytest.mark.anyio``) runs once under asyncio
and once under trio, on anyio's pytest plugin (the ``anyio_backend`` fixture
in conftest.py). This module checks that it really does, and tests what that
cannot: importing without trio, and trio's MockClock driving breakers and the
default sleeper through ``trio.run``. Nothing sleeps for real: delays pass on
a FakeClock, or on trio's MockClock with autojump.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("trio")
pytest.importorskip("anyio")

import anyio
import anyio.lowlevel
import sniffio
import trio
import trio.testing

from aiobreakers import (
    BackoffStrategy,
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    RetryConfig,
    RetryPolicy,
    SystemSleeper,
)
from aiobreakers.testing import Fakes, TrioClock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

pytestmark = pytest.mark.anyio

# The async tests that run under asyncio only, each for a reason its module
# gives (they drive asyncio tasks one by one); any other is a mistake.
ASYNCIO_ONLY = {
    "test_thousand_tasks_share_the_probe_slots",
    "test_failing_probe_reopens_and_slots_survive_cancellation",
    "test_block_closed_by_another_task_frees_its_probe_slot",
}


class Flaky:
    """An async dependency that raises the scripted errors, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        await anyio.lowlevel.checkpoint()
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_import_does_not_import_trio() -> None:
    code = (
        "import sys, aiobreakers, aiobreakers.testing\n"
        "assert 'trio' not in sys.modules, 'trio imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603


async def test_async_tests_run_under_the_backend_they_name(anyio_backend: str) -> None:
    """An async test parametrized with "trio" runs in a trio task, and so on."""
    assert sniffio.current_async_library() == anyio_backend


def test_every_async_test_runs_under_asyncio_and_trio(
    request: pytest.FixtureRequest,
) -> None:
    """Each async test runs once per backend, but for the asyncio-only ones."""
    backends: dict[str, set[object]] = {}
    for item in request.session.items:
        if isinstance(item, pytest.Function) and "anyio_backend" in item.fixturenames:
            backend = item.callspec.params["anyio_backend"]
            backends.setdefault(item.originalname, set()).add(backend)
    detector = "test_async_tests_run_under_the_backend_they_name"
    assert backends[detector] == {"asyncio", "trio"}
    asyncio_only = {name for name, seen in backends.items() if seen == {"asyncio"}}
    assert asyncio_only <= ASYNCIO_ONLY
    assert all(seen in ({"asyncio"}, {"asyncio", "trio"}) for seen in backends.values())


async def test_fakes_fixture_records_a_trip(aiobreakers_fakes: Fakes) -> None:
    """Under aiobreakers_fakes a breaker trips, recovers and is spied on."""
    breaker = CircuitBreaker(
        "payments", BreakerConfig(failure_threshold=2, recovery_timeout=30.0)
    )

    @breaker
    async def charge() -> str:
        await anyio.lowlevel.checkpoint()
        raise ConnectionError

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await charge()
    with pytest.raises(CircuitOpenError):
        await charge()
    await aiobreakers_fakes.clock.sleep_async(30.0)
    aiobreakers_fakes.breakers.assert_tripped("payments")
    assert breaker.state is CircuitState.HALF_OPEN
    assert aiobreakers_fakes.clock.monotonic() == 30.0


def mock_run(main: Callable[[], Awaitable[Any]]) -> Any:
    """Run *main* with trio on a MockClock that jumps whenever all tasks wait."""
    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_system_sleeper_sleeps_on_trios_clock() -> None:
    """The default sleeper sleeps with trio under trio: a MockClock drives it."""
    flaky = Flaky(ConnectionError(), ConnectionError())
    policy = RetryPolicy(
        "api",
        RetryConfig(base_delay=10.0, strategy=BackoffStrategy.EXPONENTIAL),
        sleeper=SystemSleeper(),
    )

    async def main() -> tuple[str, float]:
        start = trio.current_time()
        result = await policy.call_async(flaky)
        return result, trio.current_time() - start

    assert mock_run(main) == ("ok", 30.0)


def test_attempt_timeout_on_system_sleeper_under_trio() -> None:
    """Under trio the real sleeper's cut is a cancel scope on trio's clock."""
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await trio.sleep_forever()
        return "ok"

    policy = RetryPolicy(
        "api",
        RetryConfig(
            base_delay=1.0, strategy=BackoffStrategy.EXPONENTIAL, attempt_timeout=5.0
        ),
        sleeper=SystemSleeper(),
    )

    async def main() -> tuple[str, float]:
        result = await policy.call_async(attempt)
        return result, trio.current_time()

    result, now = mock_run(main)
    assert (result, calls) == ("ok", 2)
    assert now == pytest.approx(6.0)


def test_trio_clock_drives_recovery() -> None:
    """TrioClock lets a MockClock's virtual time open and recover a breaker."""
    breaker = CircuitBreaker(
        "mock",
        BreakerConfig(failure_threshold=1, recovery_timeout=30.0, success_threshold=1),
        clock=TrioClock(),
    )

    async def main() -> CircuitState:
        with pytest.raises(ConnectionError):
            await breaker.call_async(Flaky(ConnectionError()))
        with pytest.raises(CircuitOpenError) as rejected:
            await breaker.call_async(Flaky())
        assert rejected.value.retry_after == 30.0
        await trio.sleep(30.0)
        assert breaker.state is CircuitState.HALF_OPEN
        await breaker.call_async(Flaky())
        return breaker.state

    assert mock_run(main) is CircuitState.CLOSED


def test_trio_clock_reads_a_given_clock() -> None:
    """TrioClock(mock_clock) reads that clock, also outside trio.run."""
    mock = trio.testing.MockClock()
    clock = TrioClock(mock)
    mock.jump(12.5)
    assert clock.monotonic() == pytest.approx(mock.current_time())
    assert repr(clock) == f"TrioClock({mock!r})"
    assert repr(TrioClock()) == "TrioClock()"


def test_trio_clock_without_a_clock_needs_a_run() -> None:
    """TrioClock() reads the running trio.run's clock; outside one it raises."""
    with pytest.raises(RuntimeError):
        TrioClock().monotonic()
