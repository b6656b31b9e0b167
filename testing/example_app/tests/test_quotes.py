"""
The quote service under failure, tested with the aiobreakers pytest plugin.

Every test runs in virtual time: retry delays pass instantly while moving
``fake_clock``, and ``fake_random`` decides where in each jitter range a delay
falls, so delays and timestamps are asserted with ``==``.

The retry policy uses full jitter: the delay before retry *k* is
``uniform(0, cap)`` with ``cap = min(5.0, 0.5 * 2 ** (k - 1))``, that is caps
of 0.5, 1.0 and 2.0 seconds. ``fake_random`` draws the middle of every range
(0.25, 0.5, 1.0) unless a test scripts other fractions with ``set()``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
from quotes import (
    ExchangeUnavailableError,
    QuoteUnavailableError,
    UnknownSymbolError,
    exchange_breaker,
)

if TYPE_CHECKING:
    from quotes import QuoteClient

    from aiobreakers.testing import BreakerSpy, FakeClock, FakeRandom, RetrySpy

    from .exchange import ScriptedExchange

BREAKER = "exchange"
RETRY = "exchange-retry"


async def start_outage(client: QuoteClient, exchange: ScriptedExchange) -> None:
    """
    Quote ACME while the exchange is up, then take it down until the circuit opens.

    With the default jitter the attempts fail at t=0, 0.25 and 0.75 (which
    opens the circuit); the last retry, at t=1.75, is served from the cache.
    """
    assert await client.quote("ACME") == 101.25
    exchange.down = True
    assert await client.quote("ACME") == 101.25
    # Compare states with strings: mypy narrows a property compared with an
    # enum member, and would then reject a later check of another state.
    assert exchange_breaker.state == "open"


async def test_a_healthy_exchange_is_called_once(
    client: QuoteClient,
    exchange: ScriptedExchange,
    fake_clock: FakeClock,
    breaker_spy: BreakerSpy,
    retry_spy: RetrySpy,
) -> None:
    """A normal quote makes one request, no retries, and takes no time."""
    assert await client.quote("ACME") == 101.25

    assert len(exchange.requests) == 1
    assert retry_spy.retries(RETRY) == []
    breaker_spy.assert_calls(BREAKER, successes=1, failures=0, rejected=0)
    assert fake_clock.sleeps == []
    assert fake_clock.monotonic() == 0.0


async def test_transient_errors_are_retried_after_exact_delays(
    client: QuoteClient,
    exchange: ScriptedExchange,
    fake_clock: FakeClock,
    fake_random: FakeRandom,
    retry_spy: RetrySpy,
) -> None:
    """Two transient failures cost two retries, with the jitter the test chose."""
    exchange.script(ConnectionError, 503)
    fake_random.set([1.0, 0.75])  # the top of the first range, 3/4 of the second

    assert await client.quote("ACME") == 101.25

    retry_spy.assert_attempts(RETRY, [1, 2])
    retry_spy.assert_delays(RETRY, [0.5, 0.75])
    assert [type(event.error) for event in retry_spy.retries(RETRY)] == [
        ConnectionError,
        ExchangeUnavailableError,
    ]
    assert fake_random.draws == [(0.0, 0.5, 0.5), (0.0, 1.0, 0.75)]
    assert fake_clock.sleeps == [0.5, 0.75]
    assert fake_clock.monotonic() == 1.25
    assert len(exchange.requests) == 3
    # Two failures in a row stay below the breaker's threshold of three.
    metrics = exchange_breaker.get_metrics()
    assert (metrics["state"], metrics["total_failures"]) == ("closed", 2)


async def test_an_outage_opens_the_circuit_and_quotes_come_from_the_cache(
    client: QuoteClient,
    exchange: ScriptedExchange,
    fake_clock: FakeClock,
    breaker_spy: BreakerSpy,
    retry_spy: RetrySpy,
) -> None:
    """Three failures open the circuit; from then on quotes come from the cache."""
    assert await client.quote("ACME") == 101.25
    exchange.down = True

    # Attempts at t=0, 0.25 and 0.75 fail, and the third opens the circuit.
    # The retry 1.0 s later is rejected by the breaker and served by the
    # fallback, so the caller gets the cached price rather than an error.
    assert await client.quote("ACME") == 101.25

    breaker_spy.assert_transitions(BREAKER, ("closed", "open"))
    breaker_spy.assert_calls(BREAKER, successes=1, failures=3, rejected=1)
    assert breaker_spy.fallbacks(BREAKER) == 1
    retry_spy.assert_delays(RETRY, [0.25, 0.5, 1.0])
    assert len(exchange.requests) == 4  # the rejected attempt never left
    assert fake_clock.monotonic() == 1.75
    assert exchange_breaker.get_metrics()["time_until_recovery"] == 29.0

    # While open, quotes are served at once: no request, no retry, no waiting.
    assert await client.quote("ACME") == 101.25
    assert len(exchange.requests) == 4
    assert len(retry_spy.retries(RETRY)) == 3
    assert fake_clock.monotonic() == 1.75
    assert breaker_spy.fallbacks(BREAKER) == 2

    # A symbol never quoted has nothing cached: an error, and still no retry.
    with pytest.raises(QuoteUnavailableError, match="'INIT' was never quoted"):
        await client.quote("INIT")
    assert len(retry_spy.retries(RETRY)) == 3
    breaker_spy.assert_calls(BREAKER, rejected=3)


async def test_an_outage_with_nothing_cached_is_reported(
    client: QuoteClient,
    exchange: ScriptedExchange,
    fake_clock: FakeClock,
    breaker_spy: BreakerSpy,
    retry_spy: RetrySpy,
) -> None:
    """With an empty cache the fallback raises, and the retries stop there."""
    exchange.down = True

    with pytest.raises(QuoteUnavailableError, match="'ACME' was never quoted"):
        await client.quote("ACME")

    # The circuit opened at the third attempt, so the fourth was served by the
    # fallback, which raised an error the policy does not retry: the policy
    # never ran out of retries.
    breaker_spy.assert_transitions(BREAKER, ("closed", "open"))
    retry_spy.assert_delays(RETRY, [0.25, 0.5, 1.0])
    retry_spy.assert_exhausted(RETRY, times=0)
    assert fake_clock.monotonic() == 1.75
    assert len(exchange.requests) == 3


async def test_after_the_recovery_timeout_good_probes_close_the_circuit(
    client: QuoteClient,
    exchange: ScriptedExchange,
    fake_clock: FakeClock,
    breaker_spy: BreakerSpy,
) -> None:
    """Once the timeout has passed, two good probes close the circuit again."""
    await start_outage(client, exchange)  # opened at t=0.75; now t=1.75
    exchange.down = False
    exchange.prices["ACME"] = 102.5

    fake_clock.advance(28.75)  # t=30.5: a quarter second too early to probe
    assert await client.quote("ACME") == 101.25  # still the cached price
    assert exchange_breaker.state == "open"

    fake_clock.advance(0.25)  # t=30.75: open for exactly recovery_timeout
    assert exchange_breaker.state == "half_open"
    assert await client.quote("ACME") == 102.5  # the first probe
    assert exchange_breaker.state == "half_open"
    assert await client.quote("ACME") == 102.5  # the second closes it
    assert exchange_breaker.state == "closed"

    breaker_spy.assert_transitions(
        BREAKER, ("closed", "open"), ("open", "half_open"), ("half_open", "closed")
    )
    assert len(exchange.requests) == 6  # 1 + 3 failed + 2 probes


async def test_a_failed_probe_opens_the_circuit_again(
    client: QuoteClient,
    exchange: ScriptedExchange,
    fake_clock: FakeClock,
    breaker_spy: BreakerSpy,
    retry_spy: RetrySpy,
) -> None:
    """A probe that fails re-opens at once; the retry after it gets the cache."""
    await start_outage(client, exchange)
    fake_clock.advance(29.0)  # t=30.75: the circuit lets one probe through
    retry_spy.clear()

    assert await client.quote("ACME") == 101.25

    breaker_spy.assert_transitions(
        BREAKER, ("closed", "open"), ("open", "half_open"), ("half_open", "open")
    )
    breaker_spy.assert_tripped(BREAKER, times=2)
    retry_spy.assert_delays(RETRY, [0.25])  # one retry, rejected and served
    assert fake_clock.monotonic() == 31.0
    # A new recovery window started when the probe failed, at t=30.75.
    assert exchange_breaker.get_metrics()["time_until_recovery"] == 29.75


async def test_an_unknown_symbol_is_neither_retried_nor_counted_as_a_failure(
    client: QuoteClient,
    exchange: ScriptedExchange,
    breaker_spy: BreakerSpy,
    retry_spy: RetrySpy,
) -> None:
    """A 404 is a healthy answer: it reaches the caller and never trips anything."""
    for _ in range(5):
        with pytest.raises(UnknownSymbolError, match="does not list 'NOPE'"):
            await client.quote("NOPE")

    assert len(exchange.requests) == 5
    assert retry_spy.retries(RETRY) == []
    breaker_spy.assert_calls(BREAKER, successes=5, failures=0)
    breaker_spy.assert_transitions(BREAKER)


def test_the_sync_client_obeys_the_same_fakes(
    client: QuoteClient,
    exchange: ScriptedExchange,
    fake_clock: FakeClock,
    breaker_spy: BreakerSpy,
    retry_spy: RetrySpy,
) -> None:
    """quote_sync retries, opens the circuit and falls back exactly like quote."""
    exchange.script(TimeoutError)
    assert client.quote_sync("ACME") == 101.25
    assert fake_clock.sleeps == [0.25]  # slept on the fake clock, not for real

    exchange.down = True
    assert client.quote_sync("ACME") == 101.25  # 3 failures, then the fallback

    breaker_spy.assert_transitions(BREAKER, ("closed", "open"))
    retry_spy.assert_delays(RETRY, [0.25, 0.25, 0.5, 1.0])
    assert fake_clock.monotonic() == 2.0


async def test_retries_and_state_changes_are_logged(
    client: QuoteClient,
    exchange: ScriptedExchange,
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The app's hooks log each retry and each change of the circuit's state."""
    caplog.set_level(logging.INFO, logger="quotes")
    await start_outage(client, exchange)
    exchange.down = False
    fake_clock.advance(30.0)
    await client.quote("ACME")
    await client.quote("ACME")

    failed = "ConnectionError('scripted ConnectionError')"
    assert [record.getMessage() for record in caplog.records] == [
        f"retry 1 in 0.250 s after {failed}",
        f"retry 2 in 0.500 s after {failed}",
        "circuit 'exchange' opened: serving cached quotes",
        f"retry 3 in 1.000 s after {failed}",
        "circuit 'exchange' half-open: probing",
        "circuit 'exchange' closed: exchange is back",
    ]


def test_every_test_starts_with_a_closed_breaker() -> None:
    """The autouse fixture in conftest.py undid the outages of the tests above."""
    assert exchange_breaker.state == "closed"
    assert exchange_breaker.get_metrics()["total_calls"] == 0
