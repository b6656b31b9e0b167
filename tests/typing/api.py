"""
Static type tests: checked by mypy --strict and pyright strict in CI, never run.

Each ``# type: ignore[code]  # pyright: ignore[rule]`` marks a line that must
be rejected by both; ``warn_unused_ignores`` and pyright's
``reportUnnecessaryTypeIgnoreComment`` turn a line that type-checks into a
failure. Exact signatures (parameter names, keyword-only markers) have no
common spelling: mypy reads them from ``mypy_extensions.Arg`` in ``if MYPY:``
blocks (mypy takes ``MYPY`` as true, pyright is told it is false), and pyright
checks the same ones with ``reveal_type(..., expected_text=...)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from typing_extensions import assert_type, reveal_type

from aiobreakers import (
    Attempt,
    Attempts,
    BackoffStrategy,
    BreakerConfig,
    BudgetMetrics,
    CircuitBreaker,
    NoFallback,
    RetryBudget,
    RetryConfig,
    RetryExhausted,
    RetryPolicy,
    UnwantedResult,
    parse_retry_after,
)

MYPY = False
if MYPY:
    from mypy_extensions import Arg, DefaultNamedArg, KwArg

    Sig_f = Callable[
        [Arg(int, "x"), DefaultNamedArg(str, "y")],
        Coroutine[Any, Any, dict[str, int]],
    ]
    Sig_g = Callable[[Arg(int, "a")], str]
    Sig_quote = Callable[[Arg(str, "symbol")], Coroutine[Any, Any, float]]
    Sig_quote_sync = Callable[[Arg(str, "symbol")], float]

# --- 1/2. construction, defaults, inference ----------------------------------------
breaker = CircuitBreaker("api")  # no annotation needed under --strict
assert_type(breaker, CircuitBreaker[..., NoFallback])  # a public name, documented
# A breaker without a fallback is fully typed without annotations, and
# CircuitBreaker[..., Any] accepts it.
untyped: CircuitBreaker[..., Any] = breaker
bare: CircuitBreaker = breaker  # PEP 696 defaults fill in the parameters


def fb(symbol: str) -> float:
    return -1.0


async def afb(symbol: str) -> float:
    return -1.0


typed = CircuitBreaker("quotes", fallback=fb)
atyped = CircuitBreaker("quotes", fallback=afb)  # async fallback: R is the awaited type
explicit: CircuitBreaker[[str], float] = CircuitBreaker("quotes", fallback=fb)


def takes_any(b: CircuitBreaker[..., Any]) -> None: ...


takes_any(breaker)
takes_any(typed)
takes_any(explicit)


def bool_fb(symbol: str) -> bool:
    return False


bad_r: CircuitBreaker[[str], str] = CircuitBreaker("b", fallback=fb)  # type: ignore[arg-type]  # pyright: ignore[reportAssignmentType]
bad_p: CircuitBreaker[[int], float] = CircuitBreaker("b", fallback=fb)  # type: ignore[arg-type]  # pyright: ignore[reportAssignmentType]
bad_p2: CircuitBreaker[[int], float] = typed  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]

# --- 3. decorator keeps exact signatures (default breaker) ---------------------------


@breaker
async def f(x: int, *, y: str = "") -> dict[str, int]:
    return {y: x}


@breaker
def g(a: int) -> str:
    return str(a)


async def use_f() -> None:
    assert_type(await f(1, y="a"), dict[str, int])
    await f(1, "a")  # type: ignore[call-arg]  # y stays keyword-only  # pyright: ignore[reportCallIssue]
    await f(x="1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await f(1, z=2)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]


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


@explicit  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
def other(n: int) -> float:
    return 1.0


@explicit  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
def wrong(symbol: str) -> str:
    return ""


@typed  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
async def wrong_async(symbol: str) -> str:
    return ""


@typed  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
async def renamed(sym: str) -> float:  # fallback may be called as fallback(symbol=...)
    return 1.0


# Each kind of misfit is one error for mypy, and for pyright the failed overload
# call (reportCallIssue, with its reason in reportArgumentType) and, in strict
# mode, the decorator it then ignores (docs/typing.rst says why).
@typed  # type: ignore[arg-type]  # sync function, sync fallback: wrong parameters  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
def sync_params(n: int) -> float:
    return 1.0


@typed  # type: ignore[arg-type]  # sync function, sync fallback: wrong result  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
def sync_result(symbol: str) -> str:
    return ""


@atyped  # type: ignore[arg-type]  # async function, async fallback: wrong parameters  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
async def async_params(n: int) -> float:
    return 1.0


@atyped  # type: ignore[arg-type]  # async function, async fallback: wrong result  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
async def async_result(symbol: str) -> str:
    return ""


@typed  # type: ignore[arg-type]  # async function, sync fallback: wrong parameters  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
async def served_params(n: int) -> float:
    return 1.0


@typed  # type: ignore[arg-type]  # async function, sync fallback: wrong result  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
async def served_result(symbol: str) -> str:
    return ""


# --- 4. methods ----------------------------------------------------------------------


class C:
    @breaker
    async def m(self, x: int) -> int:
        return x

    @breaker
    def s(self, x: int) -> int:
        return x

    @typed  # type: ignore[arg-type]  # typed breaker: fallback lacks `self`  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
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

    @_breaker  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    def wrong(self, n: int) -> float:
        return 1.0


async def use_methods() -> None:
    assert_type(await C().m(1), int)
    assert_type(C().s(1), int)
    await C().m("x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    assert_type(await Svc().quote("X"), float)
    assert_type(Svc().quote_sync("X"), float)
    Svc().quote_sync(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# --- 5. call_async / call_sync / context managers ----------------------------------


async def quote_raw(symbol: str) -> float:
    return 1.0


def quote_sync_raw(symbol: str) -> float:
    return 1.0


typed(quote_sync)  # type: ignore[arg-type]  # positional-only [str] does not accept symbol=...  # pyright: ignore[reportCallIssue, reportArgumentType]


async def raw(x: int, *, y: str = "") -> dict[str, int]:
    return {}


def raw_sync(a: int) -> str:
    return ""


async def use_calls() -> None:
    assert_type(await breaker.call_async(raw, 1, y="a"), dict[str, int])
    assert_type(breaker.call_sync(raw_sync, 1), str)
    assert_type(await typed.call_async(quote_raw, "X"), float)  # T | R == float
    assert_type(typed.call_sync(raw_sync, 1), str | float)  # func checked, result T | R
    await breaker.call_async(raw, "1")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    await breaker.call_async(raw, 1, z=1)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    breaker.call_sync(raw_sync)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]
    await typed.call_async(quote_raw, 1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    with breaker as b1:
        assert_type(b1, CircuitBreaker)
    async with typed as b2:
        if MYPY:
            assert_type(b2, CircuitBreaker[[Arg(str, "symbol")], float])
        else:
            reveal_type(b2, expected_text="CircuitBreaker[(symbol: str), float]")


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


@explicit  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
@retry
def typed_r_bad(n: int) -> float:
    return 1.0


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


# Hooks receive the breaker, typed.
breaker.on_open(lambda b: assert_type(b.name, str))
retry.on_retry(lambda attempt, error, delay: None)
# The documented lambda's parameters are typed (not Any, not unknown).
retry.on_retry(lambda attempt, error, delay: assert_type(delay, float))
retry.on_retry(lambda attempt, error, delay: attempt + "s")  # type: ignore[operator]  # pyright: ignore[reportOperatorIssue, reportUnknownLambdaType]


@retry.on_retry  # a decorator: returns the function, typed as a hook
def log_retry(attempt: int, error: Exception, delay: float) -> None: ...


assert_type(log_retry, Callable[[int, Exception, float], object])
retry.on_retry(lambda attempt: None)  # type: ignore[arg-type, misc]  # pyright: ignore[reportArgumentType]


# --- 8. deadlines, result predicates, server delays, budgets, blocks (issue 14) -------
limited = RetryConfig(
    deadline=30.0,
    attempt_timeout=5.0,
    retry_on_result=lambda response: response.status_code == 503,  # any result
    delay_from=lambda error: parse_retry_after(str(error)),
)
assert_type(limited.deadline, float | None)
assert_type(limited.delay_from, Callable[[Exception], float | None] | None)
RetryConfig(deadline="30")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
RetryConfig(delay_from=lambda error: "soon")  # type: ignore[arg-type, return-value]  # pyright: ignore[reportArgumentType]
RetryConfig(retry_on_result=lambda: True)  # type: ignore[arg-type, misc]  # pyright: ignore[reportArgumentType]
BreakerConfig(failure_on_result=lambda response: response.status_code >= 500)
BreakerConfig(failure_on_result=True)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

budget = RetryBudget(ratio=0.2, min_retries_per_second=10.0, window=10.0)
assert_type(budget.withdraw(), bool)
assert_type(budget.get_metrics(), BudgetMetrics)
assert_type(budget.get_metrics()["balance"], float)
assert_type(budget.get_metrics()["refusals"], int)
RetryBudget(0.2)  # type: ignore[call-arg]  # keyword-only  # pyright: ignore[reportCallIssue]
RetryBudget(ratio="0.2")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
budgeted = RetryPolicy("api", limited, budget=budget)
assert_type(budgeted.budget, RetryBudget | None)
assert_type(budgeted.get_metrics()["budget_balance"], float | None)
assert_type(budgeted.get_metrics()["budget_refusals"], int | None)
RetryPolicy("api", budget=0.2)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

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
    async with budgeted.attempts():  # type: ignore[attr-defined]  # pyright: ignore[reportGeneralTypeIssues]
        pass


assert_type(parse_retry_after("120"), float | None)
assert_type(parse_retry_after(None, now=1445412480.0), float | None)
parse_retry_after(120)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
parse_retry_after("120", 0.0)  # type: ignore[call-arg]  # now= is keyword-only  # pyright: ignore[reportCallIssue]

unwanted = UnwantedResult(503)
assert_type(unwanted.result, object)
as_exception: Exception = unwanted  # hooks and events receive an Exception


def on_exhausted(event: RetryExhausted) -> None:
    assert_type(event.reason, str)
    assert_type(event.error, Exception)


# --- exact signatures, in each checker's spelling ---------------------------------
if MYPY:
    assert_type(typed, CircuitBreaker[[Arg(str, "symbol")], float])
    assert_type(atyped, CircuitBreaker[[Arg(str, "symbol")], float])
    assert_type(f, Sig_f)
    assert_type(g, Sig_g)
    assert_type(bare(g), Sig_g)
    assert_type(quote_bool, Sig_quote_sync)
    assert_type(atyped(quote_raw), Sig_quote)
    assert_type(typed(quote_sync_raw), Sig_quote_sync)
    assert_type(rb, Sig_f)
    assert_type(br, Sig_f)
    assert_type(rb_sync, Sig_g)
    assert_type(br_sync, Sig_g)
    assert_type(C().m, Callable[[Arg(int, "x")], Coroutine[Any, Any, int]])
    assert_type(Svc().quote, Sig_quote)
    assert_type(
        any_kw, Callable[[Arg(int, "x"), KwArg(Any)], Coroutine[Any, Any, None]]
    )
    assert_type(any_ret, Callable[[Arg(int, "x")], dict[str, Any]])
    assert_type(retry(any_ret), Callable[[Arg(int, "x")], dict[str, Any]])
else:
    reveal_type(typed, expected_text="CircuitBreaker[(symbol: str), float]")
    reveal_type(atyped, expected_text="CircuitBreaker[(symbol: str), float]")
    reveal_type(
        f,
        expected_text='(x: int, *, y: str = "") -> '
        "CoroutineType[Any, Any, dict[str, int]]",
    )
    reveal_type(g, expected_text="(a: int) -> str")
    reveal_type(bare(g), expected_text="(a: int) -> str")
    reveal_type(quote_bool, expected_text="(symbol: str) -> float")
    reveal_type(
        atyped(quote_raw), expected_text="(symbol: str) -> Coroutine[Any, Any, float]"
    )
    reveal_type(typed(quote_sync_raw), expected_text="(symbol: str) -> float")
    reveal_type(
        rb,
        expected_text='(x: int, *, y: str = "") -> '
        "CoroutineType[Any, Any, dict[str, int]]",
    )
    reveal_type(
        br,
        expected_text='(x: int, *, y: str = "") -> '
        "CoroutineType[Any, Any, dict[str, int]]",
    )
    reveal_type(rb_sync, expected_text="(a: int) -> str")
    reveal_type(br_sync, expected_text="(a: int) -> str")
    reveal_type(C().m, expected_text="(x: int) -> CoroutineType[Any, Any, int]")
    reveal_type(
        Svc().quote, expected_text="(symbol: str) -> Coroutine[Any, Any, float]"
    )
    reveal_type(
        any_kw, expected_text="(x: int, **kw: Any) -> CoroutineType[Any, Any, None]"
    )
    reveal_type(any_ret, expected_text="(x: int) -> dict[str, Any]")
    reveal_type(retry(any_ret), expected_text="(x: int) -> dict[str, Any]")
