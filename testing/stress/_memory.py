"""Memory: no growth across many calls once warm, and a bounded size per breaker."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import time
import tracemalloc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aiobreakers import BreakerConfig, CircuitBreaker, CircuitOpenError, Event
from aiobreakers.testing import FakeClock

from ._core import FailureError, Log, Mode, num, storm

if TYPE_CHECKING:
    from collections.abc import Callable

GROWTH_LIMIT: Final = 8 * 1024  # bytes: no leak of even 1 byte per 10^4 calls
# Bytes per idle breaker (sharing one config): the breaker (~176), its state
# machine (~96, the seam a store plugs into) and its weak entry in the
# always-on registry (~88) make about 370. The benchmark's 300-byte target
# predates the last two; this limit catches growth beyond them.
FRESH_LIMIT: Final = 400
BREAKERS: Final = 10_000


class DroppingSink:
    """A listener that drops every event."""

    def emit(self, event: Event) -> None:
        pass


def noop(_: object) -> None:
    pass


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


@dataclass(frozen=True)
class Variant:
    """A breaker set up one way, and a loop making *n* calls through it."""

    label: str
    build: Callable[[], Callable[[int], None]]


def sync_loop(breaker: CircuitBreaker[..., Any]) -> Callable[[int], None]:
    @breaker
    def protected() -> None:
        return None

    def run(n: int) -> None:
        for _ in itertools.repeat(None, n):
            protected()

    return run


def quiet() -> Callable[[int], None]:
    return sync_loop(CircuitBreaker("quiet"))


def with_sink() -> Callable[[int], None]:
    return sync_loop(CircuitBreaker("sink", sink=DroppingSink()))


def with_hooks() -> Callable[[int], None]:
    breaker = CircuitBreaker("hooks")
    breaker.on_success(noop)
    breaker.on_failure(noop)
    return sync_loop(breaker)


def async_quiet() -> Callable[[int], None]:
    breaker = CircuitBreaker("async")
    loop = asyncio.new_event_loop()

    @breaker
    async def protected() -> None:
        return None

    async def calls(n: int) -> None:
        for _ in itertools.repeat(None, n):
            await protected()

    return lambda n: loop.run_until_complete(calls(n))


def cycling() -> Callable[[int], None]:
    """Trip, reject, half-open and close, over and over, with every listener."""
    clock = FakeClock()
    config = BreakerConfig(failure_threshold=3, success_threshold=2, recovery_timeout=1)
    breaker = CircuitBreaker("cycling", config, clock=clock, sink=DroppingSink())
    for register in (
        breaker.on_open,
        breaker.on_close,
        breaker.on_half_open,
        breaker.on_success,
        breaker.on_failure,
    ):
        register(noop)

    @breaker
    def protected(fail: bool) -> None:
        if fail:
            raise FailureError

    # 20 calls a cycle: 5 ok, 3 failures (open), 4 rejected, then (after the
    # timeout) 2 probes close it, 6 ok.
    pattern = [False] * 5 + [True] * 3 + [False] * 4 + [None] + [False] * 8

    def run(n: int) -> None:
        for step in itertools.islice(itertools.cycle(pattern), n):
            if step is None:
                clock.advance(1.0)
                continue
            with contextlib.suppress(FailureError, CircuitOpenError):
                protected(step)

    return run


VARIANTS: Final = (
    Variant("sync, nobody listening", quiet),
    Variant("sync, a sink that drops events", with_sink),
    Variant("sync, no-op on_success/on_failure hooks", with_hooks),
    Variant("async, nobody listening", async_quiet),
    Variant("trip/reject/recover cycles, sink and every hook", cycling),
)


def growth(log: Log, variant: Variant, calls: int) -> None:
    run = variant.build()
    run(calls // 10)  # warm: caches, lazy locks, interned values
    start = time.perf_counter()
    before = traced()
    run(calls // 2)
    middle = traced()
    run(calls - calls // 2)
    after = traced()
    elapsed = time.perf_counter() - start
    log.at_most(
        f"{variant.label}: growth over {num(calls)} calls (bytes)",
        after - before,
        GROWTH_LIMIT,
    )
    log.figure(
        f"   ({after - before:+,} B in all, {after - middle:+,} B in the second"
        f" half; {elapsed:.1f} s under tracemalloc)"
    )


def per_breaker(log: Log) -> None:
    names = [f"breaker-{i}" for i in range(BREAKERS)]
    base = traced()
    breakers = [CircuitBreaker(name) for name in names]
    fresh = traced()
    functions = [breaker(noop) for breaker in breakers]
    decorated = traced()
    for function, breaker in zip(functions, breakers, strict=True):
        function(None)
        breaker.trip()
        breaker.reset()
    used = traced()
    each = (fresh - base) / BREAKERS
    log.at_most(f"bytes per idle breaker ({num(BREAKERS)} alive)", each, FRESH_LIMIT)
    log.figure(
        f"bytes per breaker: {each:.0f} idle; +{(decorated - fresh) / BREAKERS:.0f}"
        f" for a decorated function; +{(used - decorated) / BREAKERS:.0f} once"
        " tripped and reset (its lock and spell)"
    )


@storm("memory", "tracemalloc: no growth once warm, bytes per breaker")
def memory(mode: Mode, log: Log) -> None:
    calls = mode.pick(100_000, 1_000_000)
    tracemalloc.start()
    try:
        for variant in VARIANTS:
            growth(log, variant, calls)
        per_breaker(log)
    finally:
        tracemalloc.stop()
