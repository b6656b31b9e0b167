"""
The quote client: retries transient errors, stops calling an exchange that is down.

The breaker and the retry policy are built once, at import time, and shared by
every client in the process: there is one exchange, so there is one picture of
its health. Neither is given a clock, a sleeper or a random source, so they use
aiobreakers' process-wide defaults: real time in production, and whatever the
test installs (the ``fake_clock`` and ``fake_random`` fixtures) under pytest.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiobreakers import (
    BackoffStrategy,
    BreakerConfig,
    CircuitBreaker,
    RetryConfig,
    RetryPolicy,
)

from .transport import Request, Response

if TYPE_CHECKING:
    from .transport import Transport

__all__ = [
    "ExchangeUnavailableError",
    "QuoteClient",
    "QuoteError",
    "QuoteUnavailableError",
    "UnknownSymbolError",
    "exchange_breaker",
    "exchange_retry",
]

logger = logging.getLogger(__name__)


class QuoteError(Exception):
    """Something kept the client from answering with a price."""


class ExchangeUnavailableError(QuoteError):
    """The exchange answered with a server error (5xx): it is unwell."""


class UnknownSymbolError(QuoteError):
    """The exchange does not list the symbol (404): asking again will not help."""


class QuoteUnavailableError(QuoteError):
    """The exchange is down and no price of the symbol was ever seen."""


# Errors that say "the exchange is unwell, try again later". Only these count
# against the breaker and only these are retried: an unknown symbol is a
# perfectly healthy answer.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,
    TimeoutError,
    ExchangeUnavailableError,
)


# Positional-only (``/``): the breaker checks the methods it protects against
# this signature, and ``quote(self, symbol)`` cannot be called as
# ``quote(client=...)``, so a parameter named ``client`` would not fit it.
def _serve_cached(client: QuoteClient, symbol: str, /) -> float:
    """While the circuit is open, answer with the last price seen."""
    return client.cached(symbol)


exchange_breaker = CircuitBreaker(
    "exchange",
    BreakerConfig(
        failure_threshold=3,
        success_threshold=2,
        recovery_timeout=30.0,
        included_exceptions=TRANSIENT_ERRORS,
    ),
    fallback=_serve_cached,
)

exchange_retry = RetryPolicy(
    "exchange-retry",
    RetryConfig(
        max_retries=3,
        base_delay=0.5,
        max_delay=5.0,
        strategy=BackoffStrategy.FULL_JITTER,
        retryable_exceptions=TRANSIENT_ERRORS,
    ),
)

exchange_breaker.on_open(
    lambda breaker: logger.warning(
        "circuit %r opened: serving cached quotes", breaker.name
    )
)
exchange_breaker.on_half_open(
    lambda breaker: logger.info("circuit %r half-open: probing", breaker.name)
)
exchange_breaker.on_close(
    lambda breaker: logger.info("circuit %r closed: exchange is back", breaker.name)
)


@exchange_retry.on_retry
def _log_retry(attempt: int, error: Exception, delay: float) -> None:
    logger.info("retry %d in %.3f s after %r", attempt, delay, error)


class QuoteClient:
    """
    Fetches prices from the exchange and remembers the last price of each symbol.

    Calls go through :data:`exchange_retry` (outer: retries transient errors
    with jittered backoff) and :data:`exchange_breaker` (inner: counts
    failures, opens after three in a row). While the circuit is open, a quote
    is served from this client's cache at once, without retries or waiting.

    Args:
        transport: How requests reach the exchange.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._cache: dict[str, float] = {}

    @exchange_retry
    @exchange_breaker
    async def quote(self, symbol: str) -> float:
        """
        Return the price of *symbol*.

        Raises:
            UnknownSymbolError: The exchange does not list *symbol*.
            QuoteUnavailableError: The exchange is down and *symbol* was never
                quoted before.
            ConnectionError, TimeoutError, ExchangeUnavailableError: The
                exchange kept failing until the retries ran out.
        """
        response = await self._transport.handle_async(_request(symbol))
        return self._read(symbol, response)

    @exchange_retry
    @exchange_breaker
    def quote_sync(self, symbol: str) -> float:
        """Return the price of *symbol*, blocking; as :meth:`quote`."""
        return self._read(symbol, self._transport.handle(_request(symbol)))

    def cached(self, symbol: str) -> float:
        """
        Return the last price seen for *symbol*.

        Raises:
            QuoteUnavailableError: *symbol* was never quoted.
        """
        try:
            return self._cache[symbol]
        except KeyError:
            raise QuoteUnavailableError(
                f"the exchange is down and {symbol!r} was never quoted"
            ) from None

    def _read(self, symbol: str, response: Response) -> float:
        if response.status == 404:
            raise UnknownSymbolError(f"the exchange does not list {symbol!r}")
        if response.status >= 500:
            raise ExchangeUnavailableError(
                f"the exchange answered {response.status} for {symbol!r}"
            )
        price = response.body.get("price")
        if response.status != 200 or not isinstance(price, (int, float)):
            raise QuoteError(f"unexpected answer for {symbol!r}: {response!r}")
        self._cache[symbol] = float(price)
        return float(price)


def _request(symbol: str) -> Request:
    return Request("GET", f"/quotes/{symbol}")
