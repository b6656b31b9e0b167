"""How breakers and retry policies wrap functions: kinds, cost, what is left."""

from __future__ import annotations

import gc
import inspect
import linecache
import sys
import tracemalloc
import weakref
from typing import TYPE_CHECKING, Any

import pytest

from aiobreakers import CircuitBreaker, RetryConfig, RetryPolicy, SystemClock
from aiobreakers.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.anyio


def protectors(clock: FakeClock) -> list[Callable[[Any], Any]]:
    breaker = CircuitBreaker("api", clock=clock)
    retry = RetryPolicy("api", RetryConfig(max_retries=1, base_delay=0.0))
    return [breaker, retry, lambda f: retry(breaker(f))]


@pytest.mark.parametrize("order", ["protector_on_top", "staticmethod_on_top"])
async def test_staticmethods_are_protected_either_way(
    clock: FakeClock, order: str
) -> None:
    """@breaker over or under @staticmethod gives a working static method."""
    for protect in protectors(clock):

        def double(value: int) -> int:
            return 2 * value

        async def triple(value: int) -> int:
            return 3 * value

        if order == "protector_on_top":
            sync_method = protect(staticmethod(double))
            async_method = protect(staticmethod(triple))
        else:
            sync_method = staticmethod(protect(double))
            async_method = staticmethod(protect(triple))
        assert isinstance(sync_method, staticmethod)
        namespace = {"double": sync_method, "triple": async_method}
        tools: Any = type("Tools", (), namespace)
        assert tools.double(2) == 4
        assert tools().double(2) == 4
        assert await tools().triple(2) == 6


def test_classmethods_are_protected_either_way(clock: FakeClock) -> None:
    """@breaker over or under @classmethod receives the class."""
    breaker = CircuitBreaker("api", clock=clock)

    def name_of(cls: type) -> str:
        return cls.__name__

    methods: list[classmethod[Any, [], str]] = [
        breaker(classmethod(name_of)),
        classmethod(breaker(name_of)),
    ]
    for method in methods:
        assert isinstance(method, classmethod)
        client: Any = type("Client", (), {"name": method})
        assert client.name() == "Client"
        assert client().name() == "Client"
    assert breaker.get_metrics()["total_calls"] == 4


def test_decorating_leaves_nothing_behind(clock: FakeClock) -> None:
    """Dropping a decorated function frees it; nothing is cached or generated."""
    cached_before = set(linecache.cache)
    for protect in protectors(clock):

        def fetch(url: str, timeout: float = 5.0) -> str:
            return f"{url} {timeout}"

        decorated = protect(fetch)
        assert decorated("a") == "a 5.0"
        alive = weakref.ref(fetch)
        wrapper = weakref.ref(decorated)
        del fetch, decorated
        gc.collect()
        assert alive() is None
        assert wrapper() is None
    assert set(linecache.cache) == cached_before


def test_decorating_per_call_does_not_accumulate(clock: FakeClock) -> None:
    """Decorating a new function on every call keeps memory flat."""
    breaker = CircuitBreaker("api", clock=clock)

    def handle(request: int) -> int:
        @breaker
        def inner() -> int:
            return request

        return inner()

    for request in range(200):  # warm up
        handle(request)
    gc.collect()
    before = len(gc.get_objects())
    for request in range(2000):
        handle(request)
    gc.collect()
    assert len(gc.get_objects()) - before < 50
    assert breaker.get_metrics()["total_calls"] == 2200


def test_behaviour_does_not_depend_on_source_files(clock: FakeClock) -> None:
    """A function without source (made by exec) is protected like any other."""
    namespace: dict[str, Any] = {}
    exec("def needs(x):\n    return x", namespace)  # noqa: S102 - no source file
    for protect in protectors(clock):
        decorated = protect(namespace["needs"])
        assert decorated(1) == 1
        with pytest.raises(TypeError):
            decorated()


def test_wrappers_are_plain_functions_with_the_original_name(clock: FakeClock) -> None:
    """The wrapper's code belongs to the library, not to generated source."""
    for protect in protectors(clock):

        def fetch() -> None:
            """Fetch it."""

        decorated = protect(fetch)
        assert decorated.__name__ == "fetch"
        assert decorated.__doc__ == "Fetch it."
        assert inspect.unwrap(decorated) is fetch
        filename = decorated.__code__.co_filename
        assert filename.startswith(sys.modules["aiobreakers"].__path__[0])


@pytest.mark.parametrize("clock_kind", ["default", "system", "fake"])
def test_healthy_calls_keep_memory_flat(clock_kind: str) -> None:
    """Tokens of healthy calls are folded, whichever clock times them."""
    clocks: dict[str, Any] = {
        "default": None,
        "system": SystemClock(),
        "fake": FakeClock(),
    }
    breaker = CircuitBreaker("api", clock=clocks[clock_kind])
    protected = breaker(len)
    for _ in range(1000):
        protected("x")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            protected("x")
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1024
    assert breaker.get_metrics()["total_successes"] == 21_000
