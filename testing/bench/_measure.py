"""Measurement primitives: timed loops, interleaved rounds, tracemalloc probes.

A *body* is a zero-argument callable: one logical call of the case being measured
(for async cases it returns an awaitable). A *sampler* runs a body ``n`` times and
returns the cost of one call in nanoseconds.

The decorating measurement times a decorator applied to fresh functions
instead (:func:`decoration_sampler`) and checks what decorating leaves behind
(:func:`retained_per_call`).
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

Body = Callable[[], Any]
Sampler = Callable[[int], float]

# A sample stops growing at this many calls, whatever the calibration says.
_MAX_ITERATIONS = 1 << 24


def sync_sampler(body: Body) -> Sampler:
    """Time ``body()`` in a plain loop."""

    def sample(n: int) -> float:
        start = time.perf_counter_ns()
        for _ in repeat(None, n):
            body()
        return (time.perf_counter_ns() - start) / n

    return sample


def raising_sampler(body: Body) -> Sampler:
    """Time ``body()`` in a loop that catches the exception every call raises."""

    def sample(n: int) -> float:
        caught = 0
        start = time.perf_counter_ns()
        for _ in repeat(None, n):
            try:
                body()
            except Exception:  # noqa: PERF203 - the raise is what is timed
                caught += 1
        elapsed = time.perf_counter_ns() - start
        if caught != n:
            raise RuntimeError(f"{n - caught} of {n} calls did not raise")
        return elapsed / n

    return sample


def async_sampler(body: Body, loop: asyncio.AbstractEventLoop) -> Sampler:
    """Time ``await body()`` in a loop that runs inside one coroutine.

    The clock is read inside the coroutine, so starting the event loop is not
    part of the measurement.
    """

    async def timed(n: int) -> float:
        start = time.perf_counter_ns()
        for _ in repeat(None, n):
            await body()
        return (time.perf_counter_ns() - start) / n

    def sample(n: int) -> float:
        return loop.run_until_complete(timed(n))

    return sample


def threaded_sampler(body: Body, threads: int) -> Sampler:
    """Time ``threads`` threads sharing ``n`` calls of ``body()``, all at once.

    The result is wall-clock time divided by the total number of calls, so it is
    the throughput cost of one call under contention. Starting the threads is
    not timed: they wait on a barrier that also releases the clock.
    """

    def sample(n: int) -> float:
        each = max(1, n // threads)
        barrier = threading.Barrier(threads + 1)

        def work() -> None:
            barrier.wait()
            for _ in repeat(None, each):
                body()

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        barrier.wait()
        start = time.perf_counter_ns()
        for worker in workers:
            worker.join()
        return (time.perf_counter_ns() - start) / (each * threads)

    return sample


def decoration_sampler(
    decorate: Callable[[Any], object], fresh: Callable[[], Any]
) -> Sampler:
    """Time ``decorate(fn)`` on ``n`` functions made by ``fresh()``, each new.

    The functions are made before the clock starts, so only decorating them is
    timed; each wrapper is dropped at once, so freeing it is timed too. A
    decorator meeting a function it has seen before could answer from a cache:
    none of these functions has been decorated before.
    """

    def sample(n: int) -> float:
        functions = [fresh() for _ in repeat(None, n)]
        start = time.perf_counter_ns()
        for fn in functions:
            decorate(fn)
        elapsed = time.perf_counter_ns() - start
        functions.clear()
        return elapsed / n

    return sample


def _iterations(per_call_ns: float, target_ns: float) -> int:
    return max(1, min(_MAX_ITERATIONS, round(target_ns / max(per_call_ns, 0.1))))


def calibrate(sample: Sampler, target_ns: float) -> int:
    """Return an iteration count for which one sample takes about ``target_ns``."""
    n = 1
    while (per_call := sample(n)) * n < target_ns / 10 and n < _MAX_ITERATIONS:
        n *= 10
    # Check at full size: some costs (lock convoys between threads) only show
    # once a sample outlasts the interpreter's thread switch interval.
    return _iterations(sample(_iterations(per_call, target_ns)), target_ns)


@dataclass(frozen=True)
class Timing:
    """Median cost of one call, and its median ratio to the baseline."""

    ns_per_call: float
    ratio: float


def interleaved_samples(
    samplers: dict[str, Sampler], rounds: int, target_ns: float
) -> dict[str, list[float]]:
    """Time every sampler round-robin: ns/call of each, one sample per round.

    Each round times every sampler once, starting one further along the list
    than the round before, so that no one always runs first or last.
    """
    iterations = {
        name: calibrate(sample, target_ns) for name, sample in samplers.items()
    }
    names = list(samplers)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        start = round_index % len(names)
        for name in names[start:] + names[:start]:
            samples[name].append(samplers[name](iterations[name]))
    return samples


def median_ratio(values: list[float], base: list[float]) -> float:
    """Return the median over rounds of ``values[i] / base[i]`` (the same round)."""
    return statistics.median(v / b for v, b in zip(values, base, strict=True))


def interleave(
    samplers: dict[str, Sampler], baseline: str, rounds: int, target_ns: float
) -> dict[str, Timing]:
    """Measure every sampler round-robin and summarise each by its median.

    The rounds are those of :func:`interleaved_samples`. The ratio of a
    sampler is the median over rounds of its time divided by the baseline's
    time *in the same round*, which cancels slow drift of the machine
    (frequency scaling, noisy neighbours).
    """
    samples = interleaved_samples(samplers, rounds, target_ns)
    base = samples[baseline]
    return {
        name: Timing(
            ns_per_call=statistics.median(values), ratio=median_ratio(values, base)
        )
        for name, values in samples.items()
    }


@contextmanager
def _traced() -> Iterator[None]:
    """Trace allocations with the garbage collector off, after a full collection."""
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()
        gc.enable()


def bytes_per_object(make: Callable[[str], object], count: int) -> float:
    """Return the traced bytes that each of ``count`` live objects costs.

    Names are built and the list that keeps the objects alive is sized before
    tracing starts, so neither is counted.
    """
    names = [f"bench-memory-{i}" for i in range(count)]
    alive: list[object] = [None] * count
    make("bench-memory-warmup")
    with _traced():
        before, _ = tracemalloc.get_traced_memory()
        for index, name in enumerate(names):
            alive[index] = make(name)
        after, _ = tracemalloc.get_traced_memory()
    return (after - before) / count


def _allocation_probe(body: Body, calls: int, settle: Body) -> tuple[int, int]:
    """Return (peak, retained) traced bytes around ``calls`` calls of ``body``."""
    loop = repeat(None, calls)
    with _traced():
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in loop:
            body()
        settle()
        after, peak = tracemalloc.get_traced_memory()
    return peak - before, after - before


def _nothing() -> None:
    """Settle nothing: most libraries hold no buffer between calls."""


def allocations(body: Body, calls: int, settle: Body = _nothing) -> tuple[int, int]:
    """Return the bytes ``calls`` calls of ``body`` allocate, as (peak, retained).

    *peak* is the most memory held at once beyond what was held before the first
    call (a call that allocates and frees shows up here); *retained* is what is
    still held after the last call and ``settle()``, which lets a library
    empty a bounded buffer it keeps between calls (aiobreakers' pending
    tokens). The probe's own bookkeeping, ``settle()`` included, is measured
    with zero calls and subtracted, so a bare function reports (0, 0).
    """
    for _ in range(calls):
        body()
    empty_peak, empty_retained = _allocation_probe(body, 0, settle)
    peak, retained = _allocation_probe(body, calls, settle)
    return peak - empty_peak, retained - empty_retained


def _retention_probe(body: Body, calls: int) -> int:
    """Return the traced bytes still held after ``calls`` calls and a collection."""
    loop = repeat(None, calls)
    with _traced():
        before, _ = tracemalloc.get_traced_memory()
        for _ in loop:
            body()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    return after - before


def retained_per_call(body: Body, calls: int) -> float:
    """Return the bytes that each call of ``body`` leaves held, after ``gc.collect()``.

    ``body`` is run once first, so that one-time work (caches filled on first
    use, imports) is not counted. As for :func:`allocations`, the probe's own
    bookkeeping is measured with zero calls and subtracted.
    """
    body()
    empty = _retention_probe(body, 0)
    return (_retention_probe(body, calls) - empty) / calls
