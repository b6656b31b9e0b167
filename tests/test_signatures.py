"""
Decorated functions keep their exact calling convention at run time.

The decorators wrap every function the same way, over ``*args, **kwargs``;
these tests pin that every kind of parameter is passed on exactly, and that
unusual functions still work.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any

import anyio.lowlevel
import pytest

from aiobreakers import (
    BackoffStrategy,
    BreakerConfig,
    CircuitBreaker,
    RetryConfig,
    RetryPolicy,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiobreakers.testing import FakeClock

pytestmark = pytest.mark.anyio


def decorators(clock: FakeClock) -> list[Callable[[Any], Any]]:
    breaker = CircuitBreaker("api", clock=clock)
    retry = RetryPolicy(
        "api",
        RetryConfig(max_retries=1, strategy=BackoffStrategy.EXPONENTIAL),
        sleeper=clock,
    )
    return [breaker, retry, lambda f: retry(breaker(f))]


def positional_only(a: int, b: int = 2, /) -> tuple[int, int]:
    return (a, b)


def mixed(a: int, /, b: int, *rest: int, c: int, d: int = 4, **extra: int) -> Any:
    return (a, b, rest, c, d, extra)


def keyword_only(*, key: str, value: str = "v") -> tuple[str, str]:
    return (key, value)


def plain(x: int, y: int = 0) -> int:
    return x + y


CALLS: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = [
    (positional_only, (1,), {}),
    (positional_only, (1, 5), {}),
    (mixed, (1, 2), {"c": 3}),
    (mixed, (1, 2, 7, 8), {"c": 3, "d": 9, "e": 10}),
    (mixed, (1,), {"b": 2, "c": 3}),
    (keyword_only, (), {"key": "k"}),
    (keyword_only, (), {"key": "k", "value": "w"}),
    (plain, (1,), {"y": 2}),
    (plain, (), {"x": 1}),
]


@pytest.mark.parametrize(("func", "args", "kwargs"), CALLS)
def test_every_kind_of_parameter_is_passed_on(
    clock: FakeClock,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Sync: the decorated function returns what the function itself would."""
    for decorate in decorators(clock):
        assert decorate(func)(*args, **kwargs) == func(*args, **kwargs)


@pytest.mark.parametrize(("func", "args", "kwargs"), CALLS)
async def test_every_kind_of_parameter_is_passed_on_async(
    clock: FakeClock,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Async: the same, through coroutine functions."""

    @functools.wraps(func)
    async def coroutine_function(*a: Any, **k: Any) -> Any:
        return func(*a, **k)

    # The decorators see the coroutine function's own signature, as written.
    coroutine_function.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    for decorate in decorators(clock):
        assert await decorate(coroutine_function)(*args, **kwargs) == func(
            *args, **kwargs
        )


def test_defaults_are_the_same_objects(clock: FakeClock) -> None:
    """A mutable default is passed on as itself, not a copy."""

    def remember(item: int, seen: list[int] = []) -> list[int]:  # noqa: B006 - the point
        seen.append(item)
        return seen

    for decorate in decorators(clock):
        first = decorate(remember)(1)
        assert decorate(remember)(2) is first
    assert remember.__defaults__ is not None
    assert remember.__defaults__[0] == [1, 2] * 3 or remember.__defaults__[0][:2] == [
        1,
        2,
    ]


def test_wrong_arguments_count_like_any_error_of_the_call(clock: FakeClock) -> None:
    """A call that does not fit raises TypeError, counted as any error would be."""
    breaker = CircuitBreaker("api", clock=clock)
    protected = breaker(plain)
    with pytest.raises(TypeError, match=r"plain\(\) missing 1 required"):
        protected()  # type: ignore[call-arg]
    assert breaker.get_metrics()["total_failures"] == 1
    lenient = CircuitBreaker(
        "lenient", BreakerConfig(excluded_exceptions=(TypeError,)), clock=clock
    )
    with pytest.raises(TypeError):
        lenient(plain)()  # type: ignore[call-arg]
    metrics = lenient.get_metrics()
    assert (metrics["total_successes"], metrics["total_failures"]) == (1, 0)


def test_signature_and_names_are_kept(clock: FakeClock) -> None:
    """inspect.signature, __name__ and __doc__ are the function's own."""
    for decorate in decorators(clock):
        decorated = decorate(mixed)
        assert inspect.signature(decorated) == inspect.signature(mixed)
        assert decorated.__name__ == "mixed"


@pytest.mark.parametrize("name", ["spell", "breaker", "policy", "func", "start"])
def test_parameters_named_like_internals_still_work(
    clock: FakeClock, name: str
) -> None:
    """A parameter that shares a name with the wrapper's own variables is fine."""
    namespace: dict[str, Any] = {}
    exec(f"def echo({name}, /, other=0):\n    return {name} + other", namespace)  # noqa: S102
    for decorate in decorators(clock):
        assert decorate(namespace["echo"])(1, other=2) == 3


def test_decorators_that_change_arguments_are_respected(clock: FakeClock) -> None:
    """The wrapper's own signature counts, not the one it wraps (__wrapped__)."""

    def injects_unit(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, unit="ms", **kwargs)

        return wrapper

    @injects_unit
    def measure(value: int, unit: str) -> str:
        return f"{value}{unit}"

    for decorate in decorators(clock):
        assert decorate(measure)(5) == "5ms"


def test_builtins_and_callable_objects(clock: FakeClock) -> None:
    """Functions without a Python signature, and objects with __call__, work."""

    class Doubler:
        def __call__(self, value: int) -> int:
            return 2 * value

    for decorate in decorators(clock):
        assert decorate(len)("abc") == 3
        assert decorate(Doubler())(4) == 8
        assert decorate(functools.partial(plain, 1))(y=2) == 3


async def test_methods_bind_self(clock: FakeClock) -> None:
    """Decorated methods, sync and async, receive self first."""
    breaker = CircuitBreaker("api", clock=clock)

    class Client:
        base = 10

        @breaker
        def add(self, value: int, /, *, twice: bool = False) -> int:
            return self.base + value * (2 if twice else 1)

        @breaker
        async def add_async(self, value: int) -> int:
            await anyio.lowlevel.checkpoint()
            return self.base + value

    assert Client().add(1, twice=True) == 12
    assert await Client().add_async(1) == 11
