"""The pytest plugin, exercised through pytester as users would meet it."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def quiet_pytest_asyncio(pytester: pytest.Pytester) -> None:
    """Settle pytest-asyncio's loop-scope option, as every project would."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


OUTAGE_TEST = """
import pytest
from aiobreakers import BreakerConfig, CircuitBreaker, CircuitOpenError

payments = CircuitBreaker("payments", BreakerConfig(failure_threshold=2))

@payments
def charge(up):
    if not up:
        raise ConnectionError("down")
    return "charged"

def test_outage_and_recovery(fake_clock, breaker_spy):
    payments.reset()
    for _ in range(2):
        with pytest.raises(ConnectionError):
            charge(False)
    with pytest.raises(CircuitOpenError):
        charge(True)
    fake_clock.advance(60)
    for _ in range(3):
        assert charge(True) == "charged"
    breaker_spy.assert_transitions(
        "payments", ("closed", "open"), ("open", "half_open"), ("half_open", "closed")
    )
"""


def test_fixtures_come_from_the_entry_point(pytester: pytest.Pytester) -> None:
    """A fresh pytest process finds the fixtures with no conftest or config."""
    pytester.makepyfile(OUTAGE_TEST)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_each_test_gets_fresh_fakes(pytester: pytest.Pytester) -> None:
    """Clock, random and spies never leak from one test into the next."""
    pytester.makepyfile(
        """
        from aiobreakers import CircuitBreaker, get_defaults

        def test_first(fake_clock, fake_random, breaker_spy):
            fake_clock.advance(5)
            fake_random.set(0.9)
            CircuitBreaker("x").trip()
            assert len(breaker_spy.events) == 1

        def test_second(fake_clock, breaker_spy):
            assert fake_clock.monotonic() == 0.0
            assert breaker_spy.events == []

        def test_third():
            defaults = get_defaults()
            assert type(defaults.clock).__name__ == "SystemClock"
            assert type(defaults.random).__name__ == "SystemRandom"
            assert defaults.sink is None
        """
    )
    pytester.runpytest().assert_outcomes(passed=3)


def test_defaults_are_restored_when_a_test_fails(pytester: pytest.Pytester) -> None:
    """A failing test still gets its fakes removed."""
    pytester.makepyfile(
        """
        from aiobreakers import get_defaults

        def test_fails(fake_clock, retry_spy):
            raise AssertionError("boom")

        def test_after():
            assert type(get_defaults().clock).__name__ == "SystemClock"
            assert get_defaults().sink is None
        """
    )
    pytester.runpytest().assert_outcomes(passed=1, failed=1)


def test_assertion_helpers_read_well_in_pytest(pytester: pytest.Pytester) -> None:
    """A failing spy assertion shows what happened and the recorded events."""
    pytester.makepyfile(
        """
        from aiobreakers import CircuitBreaker

        def test_wrong(breaker_spy):
            CircuitBreaker("db").trip()
            breaker_spy.assert_tripped("db", times=2)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: breaker 'db' opened 1 time(s), expected 2",
            "*events of 'db':",
            "*StateChanged(name='db', old=<CircuitState.CLOSED*",
        ]
    )


def test_fixtures_work_in_pytest_asyncio_tests(pytester: pytest.Pytester) -> None:
    """Async tests retry instantly on the fake clock, delays asserted exactly."""
    pytester.makepyfile(
        """
        import pytest
        from aiobreakers import RetryConfig, RetryPolicy

        attempts = []

        @RetryPolicy("fetch", RetryConfig(max_retries=3, base_delay=1))
        async def fetch():
            attempts.append(1)
            if len(attempts) < 4:
                raise TimeoutError
            return "data"

        @pytest.mark.asyncio
        async def test_backs_off(fake_clock, fake_random, retry_spy):
            fake_random.set(1.0)
            assert await fetch() == "data"
            retry_spy.assert_delays("fetch", [1.0, 2.0, 4.0])
            assert fake_clock.monotonic() == 7.0
        """
    )
    pytester.runpytest("-p", "asyncio", "-o", "asyncio_mode=strict").assert_outcomes(
        passed=1
    )


def test_fixtures_work_in_anyio_tests_under_trio_and_asyncio(
    pytester: pytest.Pytester,
) -> None:
    """Tests that anyio's plugin runs on trio get the same fakes as on asyncio."""
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(params=["asyncio", "trio"])
        def anyio_backend(request):
            return request.param
        """
    )
    pytester.makepyfile(
        """
        import pytest
        import sniffio
        from aiobreakers import (
            BreakerConfig, CircuitBreaker, CircuitOpenError, RetryConfig, RetryPolicy
        )

        pytestmark = pytest.mark.anyio

        attempts = []

        @RetryPolicy("fetch", RetryConfig(max_retries=3, base_delay=1))
        async def fetch():
            attempts.append(1)
            if len(attempts) % 4:
                raise TimeoutError
            return "data"

        async def test_backs_off(anyio_backend, fake_clock, fake_random, retry_spy):
            assert sniffio.current_async_library() == anyio_backend
            fake_random.set(1.0)
            assert await fetch() == "data"
            retry_spy.assert_delays("fetch", [1.0, 2.0, 4.0])
            assert fake_clock.monotonic() == 7.0

        async def test_recovers(anyio_backend, fake_clock, breaker_spy):
            name = f"cards-{anyio_backend}"
            cards = CircuitBreaker(name, BreakerConfig(failure_threshold=1))

            @cards
            async def charge():
                raise ConnectionError

            with pytest.raises(ConnectionError):
                await charge()
            with pytest.raises(CircuitOpenError):
                await charge()
            await fake_clock.sleep_async(60)
            assert cards.state == "half_open"
            breaker_spy.assert_tripped(name)
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines_random(["*test_backs_off?trio? PASSED*"])


def test_all_fakes_in_one_fixture(pytester: pytest.Pytester) -> None:
    """aiobreakers_fakes installs clock, random and both spies for the test."""
    pytester.makepyfile(
        """
        from aiobreakers import RetryConfig, RetryPolicy, get_defaults

        def boom():
            raise TimeoutError

        def test_all(aiobreakers_fakes):
            fake = aiobreakers_fakes
            assert get_defaults().clock is fake.clock
            assert get_defaults().random is fake.random
            policy = RetryPolicy("p", RetryConfig(max_retries=1, base_delay=4))
            try:
                policy.call_sync(boom)
            except TimeoutError:
                pass
            fake.retries.assert_delays("p", [2.0])
            assert fake.clock.monotonic() == 2.0
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_breakers_fixture_finds_import_time_breakers(pytester: pytest.Pytester) -> None:
    """Breakers made when a test module is imported are found and forced by name."""
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(autouse=True)
        def fresh(breakers):
            breakers.reset_all()
        """
    )
    pytester.makepyfile(
        """
        from aiobreakers import CircuitBreaker

        payments = CircuitBreaker("payments", fallback=lambda amount: "queued")

        @payments
        def charge(amount):
            return "charged"

        def test_down(breakers):
            breakers.force("payments", "open")
            assert charge(10) == "queued"

        def test_up_again():
            assert charge(10) == "charged"
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)
