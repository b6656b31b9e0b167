"""
Static type tests: checked by mypy --strict in CI, never run.

Each ``# type: ignore[code]`` marks a line that must be rejected;
``warn_unused_ignores`` turns a line that type-checks into a failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from mypy_extensions import Arg, DefaultNamedArg, KwArg
from typing_extensions import assert_type

from aiobreakers import (
    Attempt,
    Attempts,
    BackoffStrategy,
    BreakerConfig,
    BudgetMetrics,
    CircuitBreaker,
    RetryBudget,
    RetryConfig,
    RetryExhausted,
    RetryPolicy,
    UnwantedResult,
    parse_retry_after,
)

Sig_f = Callable[
    [Arg(int, "x"), DefaultNamedArg(str, "y")], Coroutine[Any, Any, dict[str, int]]
]
Sig_g = Callable[[Arg(int, "a")], str]
Sig_quote = Callable[[Arg(str, "symbol")], Coroutine[Any, Any, float]]
Sig_quote_sync = Callable[[Arg(str, "symbol")], float]

# --- 1/2. construction, defaults, inference ----------------------------------------
breaker = CircuitBreaker("api")  # no annotation needed under --strict
# A breaker without a fallback is fully typed without annotations, and
# CircuitBreaker[..., Any] accepts it.
untyped: CircuitBreaker[..., Any] = breaker
bare: CircuitBreaker = breaker  # PEP 696 defaults fill in the parameters


def fb(symbol: str) -> float:
    return -1.0


async def afb(symbol: str) -> float:
    return -1.0


typed = CircuitBreaker("quotes", fallback=fb)
assert_type(typed, CircuitBreaker[[Arg(str, "symbol")], float])
atyped = CircuitBreaker("quotes", fallback=afb)  # async fallback: R is the awaited type
assert_type(atyped, CircuitBreaker[[Arg(str, "symbol")], float])
explicit: CircuitBreaker[[str], float] = CircuitBreaker("quotes", fallback=fb)


def takes_any(b: CircuitBreaker[..., Any]) -> None: ...


takes_any(breaker)
takes_any(typed)
takes_any(explicit)


def bool_fb(symbol: str) -> bool:
    return False


bad_r: CircuitBreaker[[str], str] = CircuitBreaker("b", fallback=fb)  # type: ignore[arg-type]
bad_p: CircuitBreaker[[int], float] = CircuitBreaker("b", fallback=fb)  # type: ignore[arg-type]
bad_p2: CircuitBreaker[[int], float] = typed  # type: ignore[assignment]

# --- 3. decorator keeps exact signatures (default breaker) ---------------------------


@breaker
async def f(x: int, *, y: str = "") -> dict[str, int]:
    return {y: x}


@breaker
def g(a: int) -> str:
    return str(a)


assert_type(f, Sig_f)
assert_type(g, Sig_g)
assert_type(bare(g), Sig_g)


async def use_f() -> None:
    assert_type(await f(1, y="a"), dict[str, int])
    await f(1, "a")  # type: ignore[call-arg]  # y stays keyword-only
    await f(x="1")  # type: ignore[arg-type]
    await f(1, z=2)  # type: ignore[call-arg]


# --- 3. typed breaker checks the decorated function ----------------------------------


@explicit
async def quote(symbol: str) -> float:
    return 1.0


@explicit
def quote_sync(symbol: str) -> float:
    return 1.0


@typed
def quote_bool(symbol: str) -> bool:  # narrower result is fine; wrapper is typed float
    return True


# Typed breaker => wrapper carries the FALLBACK's signature (here positional-only [str],
# because `explicit` is annotated CircuitBreaker[[str], float]).
assert_type(quote, Callable[[str], Coroutine[Any, Any, float]])
assert_type(quote_sync, Callable[[str], float])
assert_type(quote_bool, Sig_quote_sync)


@explicit  # type: ignore[arg-type]
def other(n: int) -> float:
    return 1.0


@explicit  # type: ignore[arg-type]
def wrong(symbol: str) -> str:
    return ""


@typed  # type: ignore[arg-type]
async def wrong_async(symbol: str) -> str:
    return ""


@typed  # type: ignore[arg-type]
async def renamed(sym: str) -> float:  # fallback may be called as fallback(symbol=...)
    return 1.0


# --- 4. methods ----------------------------------------------------------------------


class C:
    @breaker
    async def m(self, x: int) -> int:
        return x

    @breaker
    def s(self, x: int) -> int:
        return x

    @typed  # type: ignore[arg-type]  # typed breaker: fallback lacks `self`
    def tm(self, symbol: str) -> float:  # type: ignore[misc]  # (follow-up "self missing")
        return 1.0


class Svc:
    # Solution for typed breakers on methods: the fallback takes `self` too.
    def _quote_fallback(self, symbol: str) -> float:
        return -1.0

    _breaker = CircuitBreaker("svc", fallback=_quote_fallback)

    @_breaker
    async def quote(self, symbol: str) -> float:
        return 1.0

    @_breaker
    def quote_sync(self, symbol: str) -> float:
        return 1.0

    @_breaker  # type: ignore[arg-type]
    def wrong(self, n: int) -> float:
        return 1.0


async def use_methods() -> None:
    assert_type(C().m, Callable[[Arg(int, "x")], Coroutine[Any, Any, int]])
    assert_type(await C().m(1), int)
    assert_type(C().s(1), int)
    await C().m("x")  # type: ignore[arg-type]
    assert_type(Svc().quote, Sig_quote)
    assert_type(await Svc().quote("X"), float)
    assert_type(Svc().quote_sync("X"), float)
    Svc().quote_sync(1)  # type: ignore[arg-type]


# --- 5. call_async / call_sync / context managers ----------------------------------


async def quote_raw(symbol: str) -> float:
    return 1.0


def quote_sync_raw(symbol: str) -> float:
    return 1.0


assert_type(atyped(quote_raw), Sig_quote)
assert_type(typed(quote_sync_raw), Sig_quote_sync)
typed(quote_sync)  # type: ignore[arg-type]  # positional-only [str] does not accept symbol=...


async def raw(x: int, *, y: str = "") -> dict[str, int]:
    return {}


def raw_sync(a: int) -> str:
    return ""


async def use_calls() -> None:
    assert_type(await breaker.call_async(raw, 1, y="a"), dict[str, int])
    assert_type(breaker.call_sync(raw_sync, 1), str)
    assert_type(await typed.call_async(quote_raw, "X"), float)  # T | R == float
    assert_type(typed.call_sync(raw_sync, 1), str | float)  # func checked, result T | R
    await breaker.call_async(raw, "1")  # type: ignore[call-overload]
    await breaker.call_async(raw, 1, z=1)  # type: ignore[call-arg]
    breaker.call_sync(raw_sync)  # type: ignore[call-overload]
    await typed.call_async(quote_raw, 1)  # type: ignore[arg-type]
    with breaker as b1:
        assert_type(b1, CircuitBreaker)
    async with typed as b2:
        assert_type(b2, CircuitBreaker[[Arg(str, "symbol")], float])


# --- 7. RetryPolicy and stacking ---------------------------------------------------
retry = RetryPolicy("api", RetryConfig(strategy=BackoffStrategy.EXPONENTIAL))


@retry
@breaker
async def rb(x: int, *, y: str = "") -> dict[str, int]:
    return {}


@breaker
@retry
async def br(x: int, *, y: str = "") -> dict[str, int]:
    return {}


@retry
@breaker
def rb_sync(a: int) -> str:
    return ""


@breaker
@retry
def br_sync(a: int) -> str:
    return ""


@retry
@explicit
async def r_typed(symbol: str) -> float:
    return 1.0


@explicit
@retry
def typed_r(symbol: str) -> float:
    return 1.0


@explicit  # type: ignore[arg-type]
@retry
def typed_r_bad(n: int) -> float:
    return 1.0


assert_type(rb, Sig_f)
assert_type(br, Sig_f)
assert_type(rb_sync, Sig_g)
assert_type(br_sync, Sig_g)
assert_type(r_typed, Callable[[str], Coroutine[Any, Any, float]])
assert_type(typed_r, Callable[[str], float])


class D:
    @retry
    @breaker
    async def m(self, x: int) -> int:
        return x


async def use_d() -> Awaitable[int]:
    assert_type(await D().m(1), int)
    return D().m(2)


# A function whose own signature mentions Any keeps its exact type too.
@breaker
async def any_kw(x: int, **kw: Any) -> None: ...


@breaker
def any_ret(x: int) -> dict[str, Any]:
    return {}


assert_type(any_kw, Callable[[Arg(int, "x"), KwArg(Any)], Coroutine[Any, Any, None]])
assert_type(any_ret, Callable[[Arg(int, "x")], dict[str, Any]])
assert_type(retry(any_ret), Callable[[Arg(int, "x")], dict[str, Any]])


# Hooks receive the breaker, typed.
breaker.on_open(lambda b: assert_type(b.name, str))
retry.on_retry(lambda attempt, error, delay: None)
retry.on_retry(lambda attempt: None)  # type: ignore[type-var]


# --- 8. deadlines, result predicates, server delays, budgets, blocks (issue 14) -------
limited = RetryConfig(
    deadline=30.0,
    attempt_timeout=5.0,
    retry_on_result=lambda response: response.status_code == 503,  # any result
    delay_from=lambda error: parse_retry_after(str(error)),
)
assert_type(limited.deadline, float | None)
assert_type(limited.delay_from, Callable[[Exception], float | None] | None)
RetryConfig(deadline="30")  # type: ignore[arg-type]
RetryConfig(delay_from=lambda error: "soon")  # type: ignore[arg-type, return-value]
RetryConfig(retry_on_result=lambda: True)  # type: ignore[arg-type, misc]
BreakerConfig(failure_on_result=lambda response: response.status_code >= 500)
BreakerConfig(failure_on_result=True)  # type: ignore[arg-type]

budget = RetryBudget(ratio=0.2, min_retries_per_second=10.0, window=10.0)
assert_type(budget.withdraw(), bool)
assert_type(budget.get_metrics(), BudgetMetrics)
assert_type(budget.get_metrics()["balance"], float)
assert_type(budget.get_metrics()["refusals"], int)
RetryBudget(0.2)  # type: ignore[call-arg]  # keyword-only
RetryBudget(ratio="0.2")  # type: ignore[arg-type]
budgeted = RetryPolicy("api", limited, budget=budget)
assert_type(budgeted.budget, RetryBudget | None)
assert_type(budgeted.get_metrics()["budget_balance"], float | None)
assert_type(budgeted.get_metrics()["budget_refusals"], int | None)
RetryPolicy("api", budget=0.2)  # type: ignore[arg-type]

assert_type(budgeted.attempts(), Attempts)
for attempt in budgeted.attempts():
    assert_type(attempt, Attempt)
    assert_type(attempt.number, int)
    with attempt as entered:
        assert_type(entered, Attempt)


async def use_attempts() -> None:
    async for attempt in budgeted.attempts():
        assert_type(attempt, Attempt)
        with attempt:
            pass
    async with budgeted.attempts():  # type: ignore[attr-defined]
        pass


assert_type(parse_retry_after("120"), float | None)
assert_type(parse_retry_after(None, now=1445412480.0), float | None)
parse_retry_after(120)  # type: ignore[arg-type]
parse_retry_after("120", 0.0)  # type: ignore[call-arg]  # now= is keyword-only

unwanted = UnwantedResult(503)
assert_type(unwanted.result, object)
as_exception: Exception = unwanted  # hooks and events receive an Exception


def on_exhausted(event: RetryExhausted) -> None:
    assert_type(event.reason, str)
    assert_type(event.error, Exception)
