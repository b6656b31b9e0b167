"""The case registry: what each timed case calls, and its bare baseline.

A case names a baseline body (the bare call it is compared with) and a builder
that returns the same call protected by one library. Builders raise
:class:`~_impls.Skip` when a library cannot do the case.

The decorating measurement is not a ratio case: :func:`fresh_fetch` and
:func:`decorator_for` give it a new function to decorate and each library's
decorator.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from _impls import FAILURE_THRESHOLD, MAX_RETRIES, SUBJECT, BreakerLib, RetryLib, Skip

if TYPE_CHECKING:
    from collections.abc import Callable

    from _impls import Decorator, Fn, Library, Protect
    from _measure import Body

SENTINEL = 42
THREADS = 8

# How a body is timed: a plain loop, a loop inside a coroutine, a loop that
# catches the exception each call raises, or many threads at once.
Kind = Literal["sync", "async", "raises", "threads"]
Family = Literal["breaker", "retry"]


class TransientError(Exception):
    """The failure the protected functions raise."""


def ok() -> int:
    """Succeed at once: the function every success case protects."""
    return SENTINEL


async def ok_async() -> int:
    """Succeed at once, asynchronously."""
    return SENTINEL


def down() -> NoReturn:
    """Fail at once: the bare half of the reject case."""
    raise TransientError


_serial = itertools.count()


def unique(prefix: str) -> str:
    """Return a breaker name no other case uses (some libraries share registries)."""
    return f"bench-{prefix}-{next(_serial)}"


@dataclass(frozen=True, kw_only=True)
class TimingCase:
    """One timed case.

    ``title`` may contain ``{population}``, the number of breakers alive in a
    crowded case. A crowded case keeps that many extra breakers of the library
    being measured alive while it runs.
    """

    key: str
    title: str
    kind: Kind
    family: Family
    baseline: str
    bare: Callable[[], Body]
    build: Callable[[Any, Any], Body]
    target: float | None
    crowded: bool = False


def _sync_guard(lib: BreakerLib) -> Protect:
    if lib.sync is None:
        raise Skip("n/a")
    return lib.sync


def breaker_success(lib: BreakerLib, module: Any) -> Body:
    return _sync_guard(lib)(module, unique("success"), ok)


def _breaker_success_async(lib: BreakerLib, module: Any) -> Body:
    if lib.async_ is None:
        raise Skip("n/a")
    return lib.async_(module, unique("async"), ok_async)


def _variant(
    protect: Callable[[BreakerLib], Protect | None],
) -> Callable[[BreakerLib, Any], Body]:
    """Build a success case through a breaker with one extra: a hook, a clock..."""

    def build(lib: BreakerLib, module: Any) -> Body:
        adapter = protect(lib)
        if adapter is None:
            raise Skip("n/a")
        return adapter(module, unique("variant"), ok)

    return build


def _breaker_window_success(lib: BreakerLib, module: Any) -> Body:
    """A breaker tripping on a failure-rate window: only aiobreakers has one."""
    if lib.name != SUBJECT:
        raise Skip("n/a")
    window = module.RateWindow(calls=100, minimum_calls=20, failure_rate=0.5)
    breaker = module.CircuitBreaker(unique("window"), module.BreakerConfig(trip=window))
    guarded: Body = breaker(ok)
    return guarded


def _breaker_open(lib: BreakerLib, module: Any) -> Body:
    """Return a breaker opened by failures, after checking that it rejects."""
    attempts = itertools.count()

    def failing() -> NoReturn:
        next(attempts)
        raise TransientError

    guarded = _sync_guard(lib)(module, unique("open"), failing)
    for _ in range(FAILURE_THRESHOLD + 1):
        with contextlib.suppress(Exception):
            guarded()
    reached = next(attempts)
    if reached != FAILURE_THRESHOLD:
        raise RuntimeError(
            f"breaker let {reached} calls through, expected {FAILURE_THRESHOLD}"
        )
    return guarded


def _flaky() -> tuple[Callable[[], int], Callable[[], None]]:
    """Return a function that fails ``MAX_RETRIES`` times, and its reset."""
    failures_left = [0]

    def flaky() -> int:
        if failures_left[0]:
            failures_left[0] -= 1
            raise TransientError
        return SENTINEL

    def reset() -> None:
        failures_left[0] = MAX_RETRIES

    return flaky, reset


def _bare_recovers() -> Body:
    flaky, reset = _flaky()

    def body() -> int:
        reset()
        for _ in range(MAX_RETRIES):
            try:
                return flaky()
            except TransientError:  # noqa: PERF203 - retrying in a loop is the point
                continue
        return flaky()

    return body


def _retry_recovers(lib: RetryLib, module: Any) -> Body:
    flaky, reset = _flaky()
    guarded = lib.wrap(module, flaky)

    def body() -> int:
        reset()
        result: int = guarded()
        return result

    return body


def _retry_success(lib: RetryLib, module: Any) -> Body:
    return lib.wrap(module, ok)


def _retry_success_guarded(lib: RetryLib, module: Any) -> Body:
    """A policy with a deadline and a result predicate: only aiobreakers has both."""
    if lib.name != SUBJECT:
        raise Skip("n/a")
    config = module.RetryConfig(
        max_retries=MAX_RETRIES,
        base_delay=0.0,
        max_delay=0.0,
        deadline=30.0,
        retry_on_result=lambda result: result is None,
    )
    guarded: Body = module.RetryPolicy("bench-guarded", config)(ok)
    return guarded


def _retry_success_async(lib: RetryLib, module: Any) -> Body:
    return lib.wrap(module, ok_async)


URL = "https://example.invalid/"


def fresh_fetch() -> Fn:
    """Return a new function ``fetch``, never decorated before, to decorate."""

    def fetch(url: str, timeout: float = 5.0) -> str:
        del timeout
        return url

    return fetch


def decorator_for(lib: Library, module: Any) -> Decorator:
    """Return ``lib``'s decorator: one breaker or one retry policy, reused."""
    if isinstance(lib, BreakerLib):
        return lib.decorator(module, unique("decorate"))
    if isinstance(lib, RetryLib):
        return lib.policy(module)
    raise TypeError(f"not a breaker or retry library: {lib!r}")


def bare_decorator(fn: Fn) -> Fn:
    """Decorate by hand: the ``functools.wraps`` closure every library writes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def _scale_case(*, crowded: bool) -> TimingCase:
    alive = "{population:,} breakers" if crowded else "1 breaker"
    return TimingCase(
        key="scale_crowded" if crowded else "scale_alone",
        title=f"sync breaker, success, {alive} alive",
        kind="sync",
        family="breaker",
        baseline="f()",
        bare=lambda: ok,
        build=breaker_success,
        target=None,
        crowded=crowded,
    )


CASES: tuple[TimingCase, ...] = (
    TimingCase(
        key="breaker_sync_success",
        title="sync breaker, success",
        kind="sync",
        family="breaker",
        baseline="f()",
        bare=lambda: ok,
        build=breaker_success,
        target=12,
    ),
    TimingCase(
        key="breaker_async_success",
        title="async breaker, success",
        kind="async",
        family="breaker",
        baseline="await f() in a running loop",
        bare=lambda: ok_async,
        build=_breaker_success_async,
        target=5,
    ),
    TimingCase(
        key="breaker_window_success",
        title="sync breaker, success, failure-rate window of 100 calls",
        kind="sync",
        family="breaker",
        baseline="f()",
        bare=lambda: ok,
        build=_breaker_window_success,
        target=20,
    ),
    TimingCase(
        key="breaker_hook_success",
        title="sync breaker, success, a hook registered for opening",
        kind="sync",
        family="breaker",
        baseline="f()",
        bare=lambda: ok,
        build=_variant(lambda lib: lib.on_open),
        target=12,
    ),
    TimingCase(
        key="breaker_clock_success",
        title="sync breaker, success, an injected clock",
        kind="sync",
        family="breaker",
        baseline="f()",
        bare=lambda: ok,
        build=_variant(lambda lib: lib.clocked),
        target=12,
    ),
    TimingCase(
        key="breaker_sink_success",
        title="sync breaker, success, a sink hearing every event",
        kind="sync",
        family="breaker",
        baseline="f()",
        bare=lambda: ok,
        build=_variant(lambda lib: lib.sunk),
        target=None,
    ),
    TimingCase(
        key="breaker_open_reject",
        title="open breaker, reject",
        kind="raises",
        family="breaker",
        baseline="raise + catch",
        bare=lambda: down,
        build=_breaker_open,
        target=2,
    ),
    TimingCase(
        key="breaker_threads",
        title=f"sync breaker, success, {THREADS} threads on one breaker",
        kind="threads",
        family="breaker",
        baseline=f"f() in {THREADS} threads",
        bare=lambda: ok,
        build=breaker_success,
        target=None,
    ),
    TimingCase(
        key="retry_sync_success",
        title="sync retry, success, no retry",
        kind="sync",
        family="retry",
        baseline="f()",
        bare=lambda: ok,
        build=_retry_success,
        target=6,
    ),
    TimingCase(
        key="retry_sync_guarded",
        title="sync retry, success, with a deadline and a result predicate",
        kind="sync",
        family="retry",
        baseline="f()",
        bare=lambda: ok,
        build=_retry_success_guarded,
        target=None,
    ),
    TimingCase(
        key="retry_async_success",
        title="async retry, success, no retry",
        kind="async",
        family="retry",
        baseline="await f() in a running loop",
        bare=lambda: ok_async,
        build=_retry_success_async,
        target=3,
    ),
    TimingCase(
        key="retry_recovers",
        title=f"sync retry, {MAX_RETRIES} failures then success, zero delay",
        kind="sync",
        family="retry",
        baseline=f"hand-written {MAX_RETRIES + 1}-try loop",
        bare=_bare_recovers,
        build=_retry_recovers,
        target=3,
    ),
    # Last: purgatory keeps every breaker in a registry for good.
    _scale_case(crowded=False),
    _scale_case(crowded=True),
)
