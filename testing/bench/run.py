"""Benchmark aiobreakers against its peers, all in one process.

Run ``python testing/bench/run.py`` (add ``--quick`` for a smoke run and
``--json PATH`` for machine-readable results). See ``README.md`` beside this file.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import gc
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from _cases import (
    CASES,
    SENTINEL,
    THREADS,
    URL,
    TimingCase,
    bare_decorator,
    breaker_success,
    decorator_for,
    fresh_fetch,
    ok,
    unique,
)
from _impls import BREAKERS, RETRIES, SUBJECT, BreakerLib, Library, Skip
from _measure import (
    Body,
    Sampler,
    allocations,
    async_sampler,
    bytes_per_object,
    decoration_sampler,
    interleave,
    raising_sampler,
    retained_per_call,
    sync_sampler,
    threaded_sampler,
)
from _report import (
    BARE,
    AllocationResult,
    CaseResult,
    DecorateResult,
    Decoration,
    MemoryResult,
    Outcome,
    allocation_block,
    case_block,
    decorate_block,
    memory_block,
    summary_block,
    to_json,
)
from _storm import run_storm, storm_block, storm_json

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from _impls import Decorator

T = TypeVar("T")

LIBRARIES: dict[str, tuple[Library, ...]] = {"breaker": BREAKERS, "retry": RETRIES}
MEMORY_TARGET_BYTES = 300.0
DECORATE_TARGET_US = 20.0
# "~0 bytes kept per decoration": an object kept per decoration is 16 bytes or
# more, while a table that grows once (a dict resized) keeps a few hundred bytes
# whatever the number of decorations.
DECORATE_SLACK_BYTES = 1.0
DECORATE_ONE_OFF_BYTES = 1024.0
DECORATED = "def fetch(url, timeout=5.0): return url"


@dataclass(frozen=True)
class Settings:
    """How hard to measure."""

    rounds: int
    sample_ns: float  # wall time of one sample of one implementation
    population: int  # breakers alive in the crowded and memory cases
    allocation_calls: int
    decorations: int  # decorate-call-drop cycles of the leak check


FULL = Settings(
    rounds=15,
    sample_ns=20e6,
    population=10_000,
    allocation_calls=1_000,
    decorations=5_000,
)
QUICK = Settings(
    rounds=3, sample_ns=0.2e6, population=1_000, allocation_calls=100, decorations=500
)


@functools.cache
def _module(lib: Library) -> Any:
    """Import a library once; a status string if it cannot be imported."""
    try:
        return lib.load()
    except Skip as skip:
        return str(skip)


def _attempt(lib: Library, action: Callable[[Any], T]) -> T | str:
    """Return ``action(module)`` for ``lib``, or a status saying why not."""
    module = _module(lib)
    if isinstance(module, str):
        return module
    try:
        return action(module)
    except Skip as skip:
        return str(skip)
    except Exception as exc:
        # aiobreakers is being written alongside: a missing API is a status.
        status = "not available" if lib.name == SUBJECT else "error"
        return f"{status} ({type(exc).__name__}: {exc})"


@dataclass
class _CaseRun:
    """One run of a timed case: its event loop and its crowd of idle breakers."""

    case: TimingCase
    settings: Settings
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    crowd: list[object] = field(default_factory=list)

    def checked(self, body: Body) -> Body:
        """Call ``body`` once and return it if it behaves as the case expects."""
        if self.case.kind == "raises":
            try:
                body()
            except Exception:
                return body
            raise RuntimeError("the call did not raise")
        if self.case.kind == "async":
            result = self.loop.run_until_complete(body())
        else:
            result = body()
        if result != SENTINEL:
            raise RuntimeError(f"the call returned {result!r}, expected {SENTINEL}")
        return body

    def sampler(self, body: Body) -> Sampler:
        """Return the sampler that times ``body`` the way the case asks."""
        kind = self.case.kind
        if kind == "async":
            return async_sampler(body, self.loop)
        if kind == "raises":
            return raising_sampler(body)
        if kind == "threads":
            return threaded_sampler(body, THREADS)
        return sync_sampler(body)

    def build(self, lib: Library, module: Any) -> Sampler:
        """Return the sampler of ``lib`` for the case, after checking its body."""
        if self.case.crowded and isinstance(lib, BreakerLib):
            idle = self.settings.population - 1
            self.crowd.extend(lib.make(module, unique("crowd")) for _ in range(idle))
        return self.sampler(self.checked(self.case.build(lib, module)))

    def measure(self) -> CaseResult:
        """Time the bare call and every library of the case's family, interleaved."""
        libraries = LIBRARIES[self.case.family]
        samplers = {BARE: self.sampler(self.checked(self.case.bare()))}
        statuses: dict[str, str] = {}
        for lib in libraries:
            outcome = _attempt(lib, functools.partial(self.build, lib))
            if isinstance(outcome, str):
                statuses[lib.name] = outcome
            else:
                samplers[lib.name] = outcome
        # Threads take longer to reach a steady state: give them longer samples.
        sample_ns = self.settings.sample_ns * (3 if self.case.kind == "threads" else 1)
        timings = interleave(samplers, BARE, self.settings.rounds, sample_ns)
        outcomes: dict[str, Outcome] = {BARE: timings[BARE]}
        for lib in libraries:
            outcomes[lib.name] = timings.get(lib.name) or statuses[lib.name]
        return CaseResult(
            key=self.case.key,
            title=self.case.title.format(population=self.settings.population),
            baseline=self.case.baseline,
            target=self.case.target,
            outcomes=outcomes,
        )


def run_case(case: TimingCase, settings: Settings) -> CaseResult:
    """Measure one timed case, then free its loop and its idle breakers."""
    gc.collect()
    run = _CaseRun(case, settings)
    try:
        return run.measure()
    finally:
        run.loop.close()
        run.crowd.clear()


def _bytes_per_breaker(lib: BreakerLib, count: int, module: Any) -> float:
    return bytes_per_object(functools.partial(lib.make, module), count)


def run_memory(settings: Settings) -> MemoryResult:
    """Measure the traced bytes of each library's breakers, many alive at once."""
    outcomes = {
        lib.name: _attempt(
            lib, functools.partial(_bytes_per_breaker, lib, settings.population)
        )
        for lib in BREAKERS
    }
    return MemoryResult(
        count=settings.population, target=MEMORY_TARGET_BYTES, outcomes=outcomes
    )


def _flat(
    body: Callable[[], object], calls: int, settle: Callable[[], object] | None = None
) -> tuple[int, int, int, int]:
    if settle is None:
        return allocations(body, calls) + allocations(body, calls * 10)
    return allocations(body, calls, settle) + allocations(body, calls * 10, settle)


def _success_allocations(
    lib: BreakerLib, calls: int, module: Any
) -> tuple[int, int, int, int]:
    if lib.name != SUBJECT:
        return _flat(breaker_success(lib, module), calls)
    # aiobreakers keeps up to 32 tokens of healthy calls between folds (a
    # bounded buffer, see docs/design.rst); reading its metrics folds them, so
    # that what is retained afterwards shows whether anything piles up.
    breaker = lib.make(module, unique("success"))
    return _flat(breaker(ok), calls, breaker.get_metrics)


def run_allocations(settings: Settings) -> AllocationResult:
    """Measure what success calls on a closed breaker allocate, nobody listening."""
    calls = settings.allocation_calls
    outcomes: dict[str, tuple[int, int, int, int] | str] = {BARE: _flat(ok, calls)}
    for lib in BREAKERS:
        outcomes[lib.name] = _attempt(
            lib, functools.partial(_success_allocations, lib, calls)
        )
    return AllocationResult(calls=calls, outcomes=outcomes)


def _cycle(decorate: Decorator) -> Body:
    """Return one decorate-call-drop cycle, after checking that it works."""

    def cycle() -> None:
        decorate(fresh_fetch())(URL)

    result = decorate(fresh_fetch())(URL)
    if result != URL:
        raise RuntimeError(f"the decorated function returned {result!r}")
    return cycle


def _decoration_probe(
    lib: Library, decorations: int, module: Any
) -> tuple[Sampler, float]:
    decorate = decorator_for(lib, module)
    retained = retained_per_call(_cycle(decorate), decorations)
    return decoration_sampler(decorate, fresh_fetch), retained


def _decorate_family(
    libraries: tuple[Library, ...], settings: Settings
) -> dict[str, Decoration]:
    """Time and leak-check decorating with the bare decorator and ``libraries``."""
    gc.collect()
    retained = {BARE: retained_per_call(_cycle(bare_decorator), settings.decorations)}
    samplers = {BARE: decoration_sampler(bare_decorator, fresh_fetch)}
    statuses: dict[str, str] = {}
    for lib in libraries:
        outcome = _attempt(
            lib, functools.partial(_decoration_probe, lib, settings.decorations)
        )
        if isinstance(outcome, str):
            statuses[lib.name] = outcome
        else:
            samplers[lib.name], retained[lib.name] = outcome
    timings = interleave(samplers, BARE, settings.rounds, settings.sample_ns)
    outcomes: dict[str, Decoration] = {}
    for name in [BARE, *(lib.name for lib in libraries)]:
        timing = timings.get(name)
        outcomes[name] = (
            statuses[name]
            if timing is None
            else (timing.ns_per_call / 1e3, retained[name])
        )
    return outcomes


def run_decorate(settings: Settings) -> DecorateResult:
    """Measure decorating fresh functions, with a breaker and with a retry policy."""
    return DecorateResult(
        function=DECORATED,
        decorations=settings.decorations,
        target_us=DECORATE_TARGET_US,
        slack_bytes=DECORATE_SLACK_BYTES,
        one_off_bytes=DECORATE_ONE_OFF_BYTES,
        outcomes={
            family: _decorate_family(libraries, settings)
            for family, libraries in LIBRARIES.items()
        },
    )


def _meta(settings: Settings, *, quick: bool) -> dict[str, Any]:
    libraries = {lib.name: lib for lib in BREAKERS + RETRIES}
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": quick,
        "rounds": settings.rounds,
        "sample_ms": settings.sample_ns / 1e6,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {name: lib.version() for name, lib in libraries.items()},
    }


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark aiobreakers against peer libraries (one process, "
        "interleaved rounds, medians, ratios to a bare call)."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny iteration counts: checks that the benchmark works, in seconds",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the results as JSON"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case, print the tables and optionally write JSON."""
    args = _parse(argv)
    settings = QUICK if args.quick else FULL
    meta = _meta(settings, quick=args.quick)
    versions = ", ".join(
        f"{name} {version}" for name, version in meta["versions"].items()
    )
    print(
        f"Python {meta['python']} on {meta['platform']}, {meta['cpus']} CPUs; "
        f"{settings.rounds} rounds, median ns/call; ratio = median of "
        f"(call / bare call in the same round)\n{versions}",
        flush=True,
    )
    cases = []
    for case in CASES:
        cases.append(run_case(case, settings))
        print(f"\n{case_block(cases[-1])}", flush=True)
    memory = run_memory(settings)
    print(f"\n{memory_block(memory)}", flush=True)
    allocation = run_allocations(settings)
    print(f"\n{allocation_block(allocation)}", flush=True)
    decorate = run_decorate(settings)
    print(f"\n{decorate_block(decorate)}")
    storm = run_storm(quick=args.quick)
    print(f"\n{storm_block(storm)}")
    print(f"\n{summary_block(cases, memory, decorate)}")
    if args.json is not None:
        document = to_json(meta, cases, memory, allocation, decorate)
        document["storm"] = storm_json(storm)
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
