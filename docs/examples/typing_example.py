"""
The examples of docs/typing.rst, checked by ``mypy --strict`` (never run).

Each ``# type: ignore[code]`` marks a line that mypy must reject: the project's
``warn_unused_ignores`` turns a line that type-checks into an error.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

from aiobreakers import CircuitBreaker, RetryPolicy

# --- decorators keep the exact signature ---
breaker = CircuitBreaker("api")  # no annotation needed
retry = RetryPolicy("api-retry")


@retry
@breaker
async def fetch(url: str, *, timeout: float = 10.0) -> bytes:
    return url.encode()


@breaker
def parse(raw: bytes) -> dict[str, Any]:
    return {"raw": raw}


async def use() -> None:
    assert_type(await fetch("/a", timeout=1.0), bytes)
    assert_type(parse(b"{}"), dict[str, Any])
    await fetch("/a", 1.0)  # type: ignore[call-arg]  # timeout stays keyword-only  # pyright: ignore[reportCallIssue]
    parse("not bytes")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# --- a fallback types the breaker, and is checked against each function ---


def cached_quote(symbol: str) -> float:
    return 0.0


quotes = CircuitBreaker("quotes", fallback=cached_quote)


@quotes
async def quote(symbol: str) -> float:  # fits: same parameters and result
    return 1.0


@quotes  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
async def currency(symbol: str) -> str:  # the fallback returns float, not str
    return "EUR"


@quotes  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
def by_id(quote_id: int) -> float:  # the fallback takes a str
    return 1.0


# --- annotating, and accepting any breaker ---
explicit: CircuitBreaker[[str], float] = CircuitBreaker("quotes", fallback=cached_quote)


def register(breaker: CircuitBreaker[..., Any]) -> None:
    """Accept any breaker, with or without a fallback."""


register(breaker)
register(quotes)
register(explicit)


# --- a typed breaker on methods: the fallback takes self too ---
class PriceService:
    def _cached(self, symbol: str) -> float:
        return 0.0

    _breaker = CircuitBreaker("prices", fallback=_cached)

    @_breaker
    async def price(self, symbol: str) -> float:
        return 1.0


async def use_service() -> None:
    assert_type(await PriceService().price("ACME"), float)


# --- call_sync / call_async on a breaker with a fallback ---
def live_price(symbol: str) -> int:
    return 1


result = quotes.call_sync(live_price, "ACME")
assert_type(result, int | float)  # the function's result, or the fallback's
