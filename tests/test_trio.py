"""
Breakers, retry policies and the testing toolkit under trio and anyio.

Each async test body runs under both anyio backends, asyncio and trio, through
``anyio.run`` (pytest-asyncio's auto mode would claim ``@pytest.mark.anyio``
tests for asyncio), and the MockClock tests through ``trio.run``. Nothing
sleeps for real: delays pass on a FakeClock, or on trio's MockClock with
autojump.
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
import trio
import trio.testing

from aiobreakers import (
    BackoffStrategy,
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    HookFailed,
    RetryConfig,
    RetryPolicy,
    SystemSleeper,
)
from aiobreakers.testing import FakeClock, Fakes, Spy, TrioClock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

BACKENDS = ["asyncio", "trio"]


@pytest.fixture(params=BACKENDS)
def run(
    request: pytest.FixtureRequest,
) -> Callable[[Callable[[], Awaitable[Any]]], Any]:
    """Run an async function to completion on one anyio backend."""
    backend: str = request.param

    def run(main: Callable[[], Awaitable[Any]]) -> Any:
        return anyio.run(main, backend=backend)

    return run


def retry_policy(
    clock: FakeClock | None = None, sink: Spy | None = None, **config: Any
) -> RetryPolicy:
    config.setdefault("strategy", BackoffStrategy.EXPONENTIAL)
    config.setdefault("retryable_exceptions", (ConnectionError, TimeoutError))
    return RetryPolicy(
        "api", RetryConfig(**config), clock=clock, sleeper=clock, sink=sink
    )


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


def test_retry_decorator_sleeps_on_injected_fake_clock(run: Any) -> None:
    """@retry waits each delay on the injected FakeClock, in virtual time."""
    clock = FakeClock()
    flaky = Flaky(ConnectionError(), ConnectionError())
    protected = retry_policy(clock, base_delay=1.0)(flaky)

    assert run(protected) == "ok"
    assert flaky.calls == 3
    assert clock.sleeps == [1.0, 2.0]
    assert clock.monotonic() == 3.0


def test_retry_sleeps_on_fake_clock_fixture(run: Any, fake_clock: FakeClock) -> None:
    """The fake_clock fixture is the default sleeper in trio tasks too."""
    flaky = Flaky(TimeoutError(), TimeoutError(), TimeoutError())
    protected = retry_policy(base_delay=2.0)(flaky)

    assert run(protected) == "ok"
    assert fake_clock.sleeps == [2.0, 4.0, 8.0]
    assert fake_clock.monotonic() == 14.0


def test_fakes_fixture_records_a_trip(run: Any, aiobreakers_fakes: Fakes) -> None:
    """Under aiobreakers_fakes a breaker trips, recovers and is spied on."""
    breaker = CircuitBreaker(
        "payments", BreakerConfig(failure_threshold=2, recovery_timeout=30.0)
    )

    @breaker
    async def charge() -> str:
        await anyio.lowlevel.checkpoint()
        raise ConnectionError

    async def main() -> None:
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await charge()
        with pytest.raises(CircuitOpenError):
            await charge()
        await aiobreakers_fakes.clock.sleep_async(30.0)

    run(main)
    aiobreakers_fakes.breakers.assert_tripped("payments")
    assert breaker.state is CircuitState.HALF_OPEN
    assert aiobreakers_fakes.clock.monotonic() == 30.0


def test_concurrent_fake_sleeps_wake_in_deadline_order(run: Any) -> None:
    """Concurrent sleeps on a FakeClock wake in deadline order, at their deadline."""
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep_async(seconds)
        woke.append((name, clock.monotonic()))

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(sleeper, "late", 5.0)
            group.start_soon(sleeper, "early", 1.0)
            group.start_soon(sleeper, "middle", 3.0)

    run(main)
    assert woke == [("early", 1.0), ("middle", 3.0), ("late", 5.0)]


def test_cancelled_fake_sleep_does_not_hold_time(run: Any) -> None:
    """A cancelled FakeClock sleep leaves the queue; later sleeps still wake."""
    clock = FakeClock()

    async def main() -> None:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await clock.sleep_async(100.0)
        await clock.sleep_async(1.0)

    run(main)
    assert clock.monotonic() == 1.0


def test_async_hooks_run(run: Any) -> None:
    """Async hooks run as tasks; one that raises becomes a HookFailed event."""
    spy = Spy()
    breaker = CircuitBreaker("hooks", BreakerConfig(failure_threshold=1), sink=spy)
    opened: list[CircuitState] = []

    @breaker.on_open
    async def record(b: CircuitBreaker[..., Any]) -> None:
        await anyio.lowlevel.checkpoint()
        opened.append(b.state)

    @breaker.on_open
    async def broken(b: CircuitBreaker[..., Any]) -> None:
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("hook broke")

    async def main() -> None:
        with pytest.raises(ConnectionError):
            await breaker.call_async(Flaky(ConnectionError()))
        await anyio.wait_all_tasks_blocked()

    run(main)
    assert opened == [CircuitState.OPEN]
    [failure] = spy.hook_failures("hooks")
    assert isinstance(failure, HookFailed)
    assert failure.hook == "on_open"
    assert str(failure.error) == "hook broke"


def test_async_retry_hook_runs(run: Any) -> None:
    """An async on_retry hook sees each retry."""
    clock = FakeClock()
    policy = retry_policy(clock, base_delay=1.0)
    seen: list[tuple[int, float]] = []

    @policy.on_retry
    async def record(attempt: int, error: Exception, delay: float) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append((attempt, delay))

    async def main() -> str:
        result = await policy.call_async(Flaky(ConnectionError(), ConnectionError()))
        await anyio.wait_all_tasks_blocked()
        return result

    assert run(main) == "ok"
    assert seen == [(1, 1.0), (2, 2.0)]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_fallback_serves_rejected_calls(run: Any, asynchronous: bool) -> None:
    """An open breaker serves its sync or async fallback."""

    async def async_fallback() -> str:
        await anyio.lowlevel.checkpoint()
        return "cached"

    fallback: Callable[[], Any] = async_fallback if asynchronous else lambda: "cached"
    breaker = CircuitBreaker(
        "fallback", BreakerConfig(failure_threshold=1), fallback=fallback
    )

    @breaker
    async def fetch() -> str:
        await anyio.lowlevel.checkpoint()
        raise ConnectionError

    async def main() -> str:
        with pytest.raises(ConnectionError):
            await fetch()
        return await fetch()

    assert run(main) == "cached"


def test_async_with_counts_and_rejects(run: Any) -> None:
    """`async with breaker:` counts the block's failure and then rejects."""
    breaker = CircuitBreaker(
        "block", BreakerConfig(failure_threshold=1), clock=FakeClock()
    )

    async def main() -> None:
        with pytest.raises(ConnectionError):
            async with breaker:
                await anyio.lowlevel.checkpoint()
                raise ConnectionError
        with pytest.raises(CircuitOpenError):
            async with breaker:
                pytest.fail("the open circuit runs no block")

    run(main)
    assert breaker.state is CircuitState.OPEN


def test_cancellation_frees_the_probe_slot(run: Any) -> None:
    """A cancelled probe is not counted, and the next call may probe."""
    clock = FakeClock()
    spy = Spy()
    breaker = CircuitBreaker(
        "probe",
        BreakerConfig(failure_threshold=1, recovery_timeout=10.0, success_threshold=1),
        clock=clock,
        sink=spy,
    )

    async def hang() -> str:
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover - never reached

    async def main() -> str:
        with pytest.raises(ConnectionError):
            await breaker.call_async(Flaky(ConnectionError()))
        clock.advance(10.0)
        assert breaker.state is CircuitState.HALF_OPEN
        async with anyio.create_task_group() as group:
            group.start_soon(breaker.call_async, hang)
            await anyio.wait_all_tasks_blocked()
            group.cancel_scope.cancel()  # the probe is cancelled in flight
        assert breaker.state is CircuitState.HALF_OPEN
        return await breaker.call_async(Flaky())

    assert run(main) == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert spy.hook_failures() == []


def test_cancellation_is_never_retried(run: Any) -> None:
    """Cancelling a retried call stops it: the cancellation is not retried."""
    clock = FakeClock()
    calls = 0

    async def main() -> None:
        with anyio.CancelScope() as scope:

            async def attempt() -> str:
                nonlocal calls
                calls += 1
                scope.cancel()
                await anyio.lowlevel.checkpoint()  # the cancellation lands here
                return "not reached"  # pragma: no cover

            await retry_policy(clock, base_delay=1.0).call_async(attempt)
        assert scope.cancelled_caught

    run(main)
    assert calls == 1
    assert clock.sleeps == []


def test_cancellation_through_attempt_timeout_is_not_a_timeout(run: Any) -> None:
    """Cancelling a call cut by attempt_timeout cancels it: no TimeoutError."""
    clock = FakeClock()
    calls = 0

    async def main() -> None:
        with anyio.CancelScope() as scope:

            async def attempt() -> str:
                nonlocal calls
                calls += 1
                scope.cancel()
                await anyio.lowlevel.checkpoint()  # the cancellation lands here
                return "not reached"  # pragma: no cover

            policy = retry_policy(clock, base_delay=1.0, attempt_timeout=5.0)
            await policy.call_async(attempt)
        assert scope.cancelled_caught

    run(main)
    assert calls == 1
    assert clock.sleeps in ([], [5.0])  # the cut's sleep, if it started


def test_attempt_timeout_on_fake_clock(run: Any) -> None:
    """attempt_timeout cuts a hanging attempt on the FakeClock, then retries."""
    clock = FakeClock()
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await anyio.sleep_forever()
        return "ok"

    async def main() -> str:
        return await retry_policy(clock, base_delay=1.0, attempt_timeout=5.0)(attempt)()

    assert run(main) == "ok"
    assert calls == 2
    assert clock.monotonic() == 6.0  # the 5 s cut, then the 1 s delay


def test_attempt_timeout_raises_builtin_timeout_error(run: Any) -> None:
    """With no retries left, the cut raises the builtin TimeoutError."""
    clock = FakeClock()

    async def main() -> None:
        await retry_policy(clock, max_retries=0, attempt_timeout=2.0).call_async(
            anyio.sleep_forever
        )

    with pytest.raises(TimeoutError, match="longer than 2 s"):
        run(main)
    assert clock.monotonic() == 2.0


def test_attempt_errors_propagate_unwrapped(run: Any) -> None:
    """An attempt's own error comes out as itself, not in an exception group."""

    async def main() -> None:
        await retry_policy(FakeClock(), max_retries=0, attempt_timeout=2.0).call_async(
            Flaky(ValueError("bad"))
        )

    with pytest.raises(ValueError, match="bad"):
        run(main)


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
