"""The circuit breaker: configuration, states and the state machine."""

from __future__ import annotations

import functools
import inspect
import math
import threading
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypedDict, cast, final, overload

from . import _ports
from ._enums import StrValueEnum
from ._errors import CircuitOpenError
from ._events import (
    CallFailed,
    CallRejected,
    CallSucceeded,
    Hook,
    StateChanged,
    check_hook,
    emit,
    listening,
    run_hooks,
)
from ._inspect import check_decoratable, is_async_callable, specialize
from ._ports import Clock, EventSink, check_port
from ._runtime import GIL
from ._trip import ConsecutiveFailures, RateWindow, TripPolicy, WindowState
from ._validation import (
    check_exceptions,
    check_int,
    check_name,
    check_seconds,
    is_finite,
)


@final
class _NoFallback:
    """
    The result type of a breaker built without a fallback (never instantiated).

    ``CircuitBreaker("api")`` is a ``CircuitBreaker[..., _NoFallback]``: its
    decorator returns the decorated function's own type, exactly. A breaker
    with a fallback has a real result type, and its decorator checks the
    function against the fallback instead.
    """


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine
    from types import TracebackType

    from typing_extensions import ParamSpec, Self, TypeVar

    P = ParamSpec("P", default=...)
    R = TypeVar("R", default=_NoFallback)
else:
    from typing import ParamSpec, TypeVar

    P = ParamSpec("P")
    R = TypeVar("R")

# Method-scoped type variables.
Q = ParamSpec("Q")
T = TypeVar("T")
_FR = TypeVar("_FR")
_F = TypeVar("_F", bound="Callable[..., Any]")

__all__ = ["BreakerConfig", "BreakerMetrics", "CircuitBreaker", "CircuitState"]


class CircuitState(StrValueEnum):
    """
    The state of a circuit breaker.

    Members are strings, so ``breaker.state == "open"`` works.
    """

    CLOSED = "closed"
    """Calls pass through; consecutive failures are counted."""
    OPEN = "open"
    """Calls are rejected at once, until the recovery timeout has passed."""
    HALF_OPEN = "half_open"
    """A limited number of probe calls pass; their outcome closes or re-opens."""


_CLOSED: Final = CircuitState.CLOSED
_OPEN: Final = CircuitState.OPEN
_HALF_OPEN: Final = CircuitState.HALF_OPEN


_DEFAULT_FAILURE_THRESHOLD: Final = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """
    How a circuit breaker decides to open and to close.

    Args:
        failure_threshold: Consecutive counted failures, while closed, that open
            the circuit.
        success_threshold: Successful probes, while half-open, that close it.
        recovery_timeout: Seconds the circuit stays open before it lets probes
            through.
        included_exceptions: Only exceptions of these types count as failures;
            empty means every :class:`Exception`.
        excluded_exceptions: Exceptions of these types never count as failures
            (they count as successes: the dependency answered). Wins over
            *included_exceptions*.
        half_open_max_calls: Probe calls allowed in flight at once while
            half-open; further calls are rejected as if open.
        trip: When a closed circuit opens: ``None`` for *failure_threshold*
            consecutive failures, or a :class:`RateWindow` to judge the share
            of failed or slow calls over a sliding window (or
            :class:`ConsecutiveFailures`, the default spelled out). With a
            trip policy, leave *failure_threshold* at its default.
        recovery_multiplier: Each time the circuit re-opens because a probe
            failed, its recovery timeout is multiplied by this (``2.0``
            doubles it), up to *max_recovery_timeout*; closing resets it.
            ``1.0`` keeps it fixed.
        max_recovery_timeout: Seconds; the longest a growing recovery timeout
            gets. Required when *recovery_multiplier* is above 1.

    Raises:
        TypeError: A field has the wrong type.
        ValueError: A field has a value out of range, such as a threshold
            below 1, a negative timeout, or a non-:class:`Exception` type in an
            exception tuple. The message names the field.
    """

    failure_threshold: int = 5
    success_threshold: int = 3
    recovery_timeout: float = 60.0
    included_exceptions: tuple[type[Exception], ...] = ()
    excluded_exceptions: tuple[type[Exception], ...] = ()
    half_open_max_calls: int = 1
    trip: TripPolicy | None = None
    recovery_multiplier: float = 1.0
    max_recovery_timeout: float | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_int(owner, "failure_threshold", self.failure_threshold, 1)
        check_int(owner, "success_threshold", self.success_threshold, 1)
        check_seconds(owner, "recovery_timeout", self.recovery_timeout)
        check_exceptions(owner, "included_exceptions", self.included_exceptions)
        check_exceptions(owner, "excluded_exceptions", self.excluded_exceptions)
        check_int(owner, "half_open_max_calls", self.half_open_max_calls, 1)
        self._check_trip(owner)
        self._check_recovery_growth(owner)

    def _check_trip(self, owner: str) -> None:
        trip = self.trip
        if trip is None:
            return
        if not isinstance(trip, (ConsecutiveFailures, RateWindow)):
            raise TypeError(
                f"{owner}.trip must be a RateWindow or ConsecutiveFailures,"
                f" got {trip!r}"
            )
        threshold = getattr(trip, "threshold", None)
        if self.failure_threshold not in (_DEFAULT_FAILURE_THRESHOLD, threshold):
            raise ValueError(
                f"{owner}.failure_threshold ({self.failure_threshold}) and trip"
                f" ({trip!r}) both say when to open: give one of them"
            )
        if isinstance(trip, ConsecutiveFailures):
            # The spelled-out default: failure_threshold is what the breaker
            # reads, so make it say the same.
            object.__setattr__(self, "failure_threshold", trip.threshold)

    def _check_recovery_growth(self, owner: str) -> None:
        multiplier = self.recovery_multiplier
        if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)):
            raise TypeError(
                f"{owner}.recovery_multiplier must be a number, got {multiplier!r}"
            )
        if not (is_finite(multiplier) and multiplier >= 1):
            raise ValueError(
                f"{owner}.recovery_multiplier must be a finite number >= 1,"
                f" got {multiplier!r}"
            )
        longest = self.max_recovery_timeout
        if longest is None:
            if multiplier > 1:
                raise ValueError(
                    f"{owner}.recovery_multiplier ({multiplier!r}) needs"
                    " max_recovery_timeout, the longest the timeout may grow"
                )
            return
        check_seconds(owner, "max_recovery_timeout", longest)
        if multiplier == 1:
            raise ValueError(
                f"{owner}.max_recovery_timeout ({longest!r}) does nothing unless"
                " recovery_multiplier is above 1"
            )
        if longest < self.recovery_timeout:
            raise ValueError(
                f"{owner}.max_recovery_timeout must be >= recovery_timeout"
                f" ({self.recovery_timeout!r}), got {longest!r}"
            )

    def recovery_timeout_after(self, failed_probes: int) -> float:
        """
        Return the recovery timeout after *failed_probes* re-opens in a row.

        ``recovery_timeout * recovery_multiplier ** failed_probes``, capped at
        ``max_recovery_timeout``.
        """
        longest = self.max_recovery_timeout
        if failed_probes == 0 or longest is None:
            return self.recovery_timeout
        try:
            grown = self.recovery_timeout * self.recovery_multiplier**failed_probes
        except OverflowError:  # long past the cap: an outage of days
            return longest
        return min(longest, grown)

    def counts_as_failure(self, error: Exception) -> bool:
        """Whether *error*, raised by a protected call, counts as a failure."""
        included = self.included_exceptions
        if included and not isinstance(error, included):
            return False
        return not isinstance(error, self.excluded_exceptions)


_DEFAULT_CONFIG: Final = BreakerConfig()


class BreakerMetrics(TypedDict):
    """The snapshot :meth:`CircuitBreaker.get_metrics` returns (a plain dict)."""

    name: str
    """The breaker's name."""
    state: str
    """The state, as a string: ``"closed"``, ``"open"`` or ``"half_open"``."""
    total_calls: int
    """Calls that ran and finished: ``total_successes + total_failures``."""
    total_successes: int
    """Calls that returned, or raised an exception that is not counted."""
    total_failures: int
    """Calls that raised a counted failure."""
    total_rejected: int
    """Calls rejected without running (with or without a fallback)."""
    total_trips: int
    """Times the circuit opened."""
    success_rate: float
    """``total_successes / total_calls``; ``0.0`` before any call."""
    failure_rate: float
    """``total_failures / total_calls``; ``0.0`` before any call."""
    avg_call_duration_ms: float
    """Mean duration of the calls in ``total_calls``, in milliseconds."""
    time_until_recovery: float
    """Seconds until an open circuit lets a probe through; ``0.0`` otherwise."""
    window_calls: int | None
    """Calls in the :class:`RateWindow` now; ``None`` without a window."""
    window_failure_rate: float | None
    """Share of those calls that failed (``0.0`` when empty); ``None`` without."""
    window_slow_call_rate: float | None
    """Share of those calls that were slow (``0.0`` when empty); ``None`` without."""


class _Spell:
    """
    One stretch of time in one state.

    A call remembers the spell it was admitted under. Its outcome moves the
    state machine only while that same spell lasts (compared by identity);
    a late outcome updates the totals alone.
    """

    __slots__ = ("failed_probes", "probe_successes", "state", "until")

    def __init__(
        self, state: CircuitState, until: float = -math.inf, failed_probes: int = 0
    ) -> None:
        self.state = state
        # When an open spell ends (on the breaker's clock); -inf for the
        # others, so that ``until > now`` alone says "open, keep rejecting".
        self.until = until
        # Re-opens by failed probes since the circuit last closed: they grow
        # the recovery timeout (BreakerConfig.recovery_multiplier).
        self.failed_probes = failed_probes
        # Successful probes in this (half-open) spell.
        self.probe_successes = 0


class _Block:
    """An active ``with`` block: what its ``__exit__`` needs."""

    __slots__ = ("breaker", "outer", "spell", "start")

    def __init__(
        self,
        breaker: CircuitBreaker[Any, Any],
        spell: _Spell,
        start: float,
        outer: _Block | None,
    ) -> None:
        self.breaker = breaker
        self.spell = spell
        self.start = start
        self.outer = outer


class _Extras:
    """
    What only some breakers have: their own clock, sink, hooks or rate window.

    A breaker with none of them (the common case) keeps ``_extras = None``
    and is "quiet": its healthy calls may go untimed (one in
    ``_ports.SAMPLE_EVERY`` is timed) and take the shortest path, and it
    costs less memory. On the free-threaded build every breaker has extras,
    so none takes the lock-free paths (see ``_GIL``).
    """

    __slots__ = ("clock", "hooks", "sink", "window")

    def __init__(
        self,
        clock: Clock | None,
        sink: EventSink | None,
        window: WindowState | None,
    ) -> None:
        self.clock = clock
        self.sink = sink
        self.window = window
        self.hooks: dict[str, list[Hook]] | None = None

    def idle(self) -> bool:
        """Whether there is nothing here: the breaker can be quiet."""
        return (
            self.clock is None
            and self.sink is None
            and self.window is None
            and self.hooks is None
        )


# Open with-blocks per breaker (by id; a block keeps its breaker alive), kept
# here rather than on every breaker: few breakers ever have one.
_open_blocks: Final[dict[int, list[_Block]]] = {}
_OPEN_BLOCKS_LOCK: Final = threading.Lock()

# The breakers made while tracking is on (aiobreakers.testing turns it on, so
# that tests can find a breaker by name), held weakly; None while off.
_tracked: weakref.WeakSet[CircuitBreaker[Any, Any]] | None = None


def track_breakers() -> None:
    """Start remembering (weakly) every breaker made from now on."""
    global _tracked  # noqa: PLW0603 - one switch for the process
    if _tracked is None:
        _tracked = weakref.WeakSet()


def tracked_breakers() -> list[CircuitBreaker[Any, Any]]:
    """Return the live breakers made since tracking started."""
    return [] if _tracked is None else list(_tracked)


# Every breaker starts in this spell: identity only matters between the spells
# of one breaker, and sharing it saves an object per breaker.
_FRESH: Final = _Spell(_CLOSED)

# The with-blocks open in the current thread or task, innermost first. A
# context variable, so that concurrent blocks on one breaker never mix.
_blocks: Final[ContextVar[_Block | None]] = ContextVar(
    "aiobreakers_blocks", default=None
)

# (old state, new state, reason, when, the window's rates when they caused it)
_Change = tuple[
    CircuitState, CircuitState, str, float, "tuple[int, float, float] | None"
]

# Healthy calls are counted without the lock on GIL builds: see _runtime.
_GIL: Final = GIL

# A breaker is "quiet" while it has no sink, hooks or clock of its own and the
# build has a GIL: its healthy calls may then go untimed (one in
# _ports.SAMPLE_EVERY is timed) and take the shortest path.

# Guards the creation of breakers' locks, which waits for a breaker's first
# need: a healthy breaker never allocates one.
_LOCK_CREATION: Final = threading.Lock()

_STATE_HOOKS: Final = {
    _OPEN: "on_open",
    _CLOSED: "on_close",
    _HALF_OPEN: "on_half_open",
}


class CircuitBreaker(Generic[P, R]):
    """
    A circuit breaker protecting calls to one dependency.

    Use it as a decorator (sync and async functions and methods), as a context
    manager (``with`` and ``async with``), or through :meth:`call_sync` and
    :meth:`call_async`.

    The breaker is generic in the protected call's parameters ``P`` and result
    ``R``, inferred from the *fallback*, and its decorator rejects functions
    the fallback cannot stand in for. Without a fallback it protects anything
    and its decorator keeps each function's exact type. Annotate a variable
    that may hold any breaker as ``CircuitBreaker[..., Any]``.

    Args:
        name: Identifies the breaker in errors, events, logs and metrics.
        config: When to open and close; ``None`` for the defaults.
        fallback: Called with the protected call's arguments, and its result
            returned, when the circuit rejects a call (instead of raising
            :class:`CircuitOpenError`). May be async for async functions; a
            sync fallback may serve an async function. Not used by the
            context managers, which have no arguments to pass.
        clock: The monotonic clock for recovery timeouts and durations;
            ``None`` uses the process-wide default at each call.
        sink: Receives every event of this breaker, in addition to the
            process-wide sink; ``None`` for none.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: *name* is empty.
    """

    __slots__ = (
        "__weakref__",
        "_config",
        "_consecutive_failures",
        "_duration",
        "_extras",
        "_failures",
        "_fallback",
        "_lock",
        "_name",
        "_probes",
        "_rejected",
        "_spell",
        "_successes",
        "_timed",
        "_trips",
    )

    # The async-fallback overload comes first: otherwise R would be inferred
    # as the fallback's awaitable rather than what it resolves to.
    @overload
    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        fallback: Callable[P, Awaitable[R]],
        clock: Clock | None = None,
        sink: EventSink | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        fallback: Callable[P, R] | None = None,
        clock: Clock | None = None,
        sink: EventSink | None = None,
    ) -> None: ...

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        fallback: Callable[P, R] | Callable[P, Awaitable[R]] | None = None,
        clock: Clock | None = None,
        sink: EventSink | None = None,
    ) -> None:
        check_name(name)
        if config is None:
            config = _DEFAULT_CONFIG
        elif not isinstance(config, BreakerConfig):
            raise TypeError(f"config must be a BreakerConfig, got {config!r}")
        if fallback is not None and not callable(fallback):
            raise TypeError(f"fallback must be callable, got {fallback!r}")
        self._name = name
        self._config = config
        # Stored erased: R must not appear in a mutable attribute.
        self._fallback: Callable[..., Any] | None = fallback
        trip = config.trip
        extras = _Extras(
            None if clock is None else check_port(clock, Clock, "clock"),
            None if sink is None else check_port(sink, EventSink, "sink"),
            WindowState(trip) if isinstance(trip, RateWindow) else None,
        )
        # None while quiet: see _Extras.
        self._extras = None if extras.idle() and _GIL else extras
        self._lock: threading.Lock | None = None
        self._spell = _FRESH
        self._probes = 0
        self._zero_counters()
        if _tracked is not None:
            _tracked.add(self)

    def _zero_counters(self) -> None:
        self._consecutive_failures = 0
        self._successes = 0
        self._failures = 0
        self._rejected = 0
        self._trips = 0
        self._timed = 0
        self._duration = 0.0
        if self._window is not None:
            self._window.clear()

    # What _Extras holds, for the paths that may read it at leisure.

    @property
    def _clock(self) -> Clock | None:
        return None if self._extras is None else self._extras.clock

    @property
    def _sink(self) -> EventSink | None:
        return None if self._extras is None else self._extras.sink

    @property
    def _window(self) -> WindowState | None:
        return None if self._extras is None else self._extras.window

    @property
    def _hooks(self) -> dict[str, list[Hook]] | None:
        return None if self._extras is None else self._extras.hooks

    # -- public properties --------------------------------------------------

    @property
    def name(self) -> str:
        """The breaker's name."""
        return self._name

    @property
    def config(self) -> BreakerConfig:
        """The breaker's configuration."""
        return self._config

    @property
    def state(self) -> CircuitState:
        """
        The current state.

        Reading it moves an open circuit whose recovery timeout has passed to
        half-open (there are no timer threads: the transition is lazy).
        """
        spell = self._spell
        if spell.state is _OPEN:
            with self._guard():
                change = self._maybe_half_open(self._now())
                spell = self._spell
            if change is not None:
                self._announce(change)
        return spell.state

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self._name!r} state={self._spell.state.value}>"

    # -- hooks --------------------------------------------------------------

    def on_open(self, callback: Callable[[Self], object]) -> Callable[[Self], object]:
        """
        Call *callback* with the breaker each time the circuit opens.

        Callbacks run after the breaker's lock is released. An async callback
        is scheduled as a task on the running event loop (or, with none
        running, run to completion in place). A callback that raises is logged
        and reported as a :class:`~aiobreakers.HookFailed` event; the
        protected call is never affected. Returns *callback*, so this can be
        used as a decorator.
        """
        return self._add_hook("on_open", callback)

    def on_close(self, callback: Callable[[Self], object]) -> Callable[[Self], object]:
        """Call *callback* with the breaker each time the circuit closes."""
        return self._add_hook("on_close", callback)

    def on_half_open(
        self, callback: Callable[[Self], object]
    ) -> Callable[[Self], object]:
        """Call *callback* with the breaker each time the circuit goes half-open."""
        return self._add_hook("on_half_open", callback)

    def on_success(
        self, callback: Callable[[Self], object]
    ) -> Callable[[Self], object]:
        """Call *callback* with the breaker after each call counted a success."""
        return self._add_hook("on_success", callback)

    def on_failure(
        self, callback: Callable[[Self], object]
    ) -> Callable[[Self], object]:
        """Call *callback* with the breaker after each call counted a failure."""
        return self._add_hook("on_failure", callback)

    def _add_hook(
        self, hook: str, callback: Callable[[Self], object]
    ) -> Callable[[Self], object]:
        check_hook(callback, hook)
        with self._guard():
            hooks = dict(self._hooks or {})
            hooks[hook] = [*hooks.get(hook, ()), callback]
            if self._extras is None:
                self._extras = _Extras(None, None, None)
            # Replaced, never mutated: readers iterate without the lock.
            self._extras.hooks = hooks
        return callback

    def _run_hooks(self, hook: str) -> None:
        hooks = self._hooks
        if hooks is not None and hook in hooks:
            run_hooks(
                hooks[hook], (self,), owner=self._name, hook=hook, sink=self._sink
            )

    # -- forcing ------------------------------------------------------------

    def trip(self) -> None:
        """
        Force the circuit open, with a fresh recovery timeout.

        A trip is counted only when the state changes. An open circuit whose
        recovery timeout has passed counts as half-open here, as it would for
        a call, so whether the state was read first makes no difference.
        """
        with self._guard():
            # Read under the lock: a time read before it may be stale by the
            # time the new spell starts (see _admit).
            now = self._now()
            expired = self._maybe_half_open(now)
            change = self._enter(_OPEN, now, "trip")
        for each in (expired, change):
            if each is not None:
                self._announce(each)

    def _force(self, state: CircuitState) -> None:
        """Put the circuit in *state* now (for aiobreakers.testing)."""
        if state is _CLOSED:
            self.reset()
            return
        with self._guard():
            now = self._now()
            expired = self._maybe_half_open(now)
            change = self._enter(state, now, "forced")
        for each in (expired, change):
            if each is not None:
                self._announce(each)

    def reset(self) -> None:
        """
        Force the circuit closed and zero every counter.

        Calls still running finish normally: they update the fresh totals but
        do not move the state machine.
        """
        with self._guard():
            change = self._enter(_CLOSED, self._now(), "reset")
            if change is None:
                # Already closed: still start a new spell, so calls admitted
                # before the reset cannot move the state machine.
                self._spell = _Spell(_CLOSED)
            self._zero_counters()
        if change is not None:
            self._announce(change)

    # -- metrics ------------------------------------------------------------

    def get_metrics(self) -> BreakerMetrics:
        """
        Return a snapshot of the breaker's counters, rates and state.

        The snapshot is consistent: it is taken under the breaker's lock.
        """
        state = self.state
        now = self._now()
        with self._guard():
            # Read every counter in one go, with no call in between: healthy
            # calls count without the lock (see _GIL), but cannot interleave
            # here.
            successes, failures, rejected, trips, timed, duration = (
                self._successes,
                self._failures,
                self._rejected,
                self._trips,
                self._timed,
                self._duration,
            )
            spell = self._spell
            until_recovery = 0.0
            if spell.state is _OPEN:
                until_recovery = self._retry_after(spell, now)
            window: tuple[int | None, float | None, float | None] = (None, None, None)
            if self._window is not None:
                window = self._window.rates(now)
        calls = successes + failures
        return {
            "name": self._name,
            "state": state.value if spell.state is state else spell.state.value,
            "total_calls": calls,
            "total_successes": successes,
            "total_failures": failures,
            "total_rejected": rejected,
            "total_trips": trips,
            "success_rate": successes / calls if calls else 0.0,
            "failure_rate": failures / calls if calls else 0.0,
            "avg_call_duration_ms": duration / timed * 1000.0 if timed else 0.0,
            "time_until_recovery": until_recovery,
            "window_calls": window[0],
            "window_failure_rate": window[1],
            "window_slow_call_rate": window[2],
        }

    # -- protecting calls ---------------------------------------------------

    # Without a fallback the decorator is typed as the identity: the wrapper has
    # the function's exact type. With one, the function must fit the
    # fallback's parameters and result.
    @overload
    def __call__(self: CircuitBreaker[..., _NoFallback], func: _F, /) -> _F: ...

    @overload
    def __call__(
        self: CircuitBreaker[Q, T], func: Callable[Q, Coroutine[Any, Any, T]], /
    ) -> Callable[Q, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(
        self: CircuitBreaker[Q, T], func: Callable[Q, T], /
    ) -> Callable[Q, T]: ...

    def __call__(self, func: Callable[..., Any], /) -> Callable[..., Any]:
        """
        Decorate *func* so that every call to it goes through the breaker.

        Works on sync and async functions and on methods; the wrapper keeps
        the function's signature, name and docstring.

        Raises:
            TypeError: *func* is not callable, is a generator function, or is
                sync while the fallback is async.
        """
        check_decoratable(func, "circuit breaker")
        if is_async_callable(func):
            protect_async = specialize(_async_protector, func)
            return functools.wraps(func)(protect_async(self, func))
        self._check_sync_fallback(func)
        return functools.wraps(func)(specialize(_sync_protector, func)(self, func))

    @overload
    def call_sync(
        self: CircuitBreaker[..., _NoFallback],
        func: Callable[Q, T],
        /,
        *args: Q.args,
        **kwargs: Q.kwargs,
    ) -> T: ...

    @overload
    def call_sync(
        self: CircuitBreaker[..., _FR],
        func: Callable[Q, T],
        /,
        *args: Q.args,
        **kwargs: Q.kwargs,
    ) -> T | _FR: ...

    def call_sync(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """
        Call ``func(*args, **kwargs)`` through the breaker and return its result.

        When the circuit rejects the call, the fallback (if any) is called with
        ``*args`` and ``**kwargs`` instead.

        Raises:
            CircuitOpenError: The circuit rejected the call and there is no
                fallback.
            Exception: Whatever *func* raises, unchanged.
        """
        self._check_sync_fallback(func)
        return self._protect_sync(func)(*args, **kwargs)

    @overload
    async def call_async(
        self: CircuitBreaker[..., _NoFallback],
        func: Callable[Q, Awaitable[T]],
        /,
        *args: Q.args,
        **kwargs: Q.kwargs,
    ) -> T: ...

    @overload
    async def call_async(
        self: CircuitBreaker[..., _FR],
        func: Callable[Q, Awaitable[T]],
        /,
        *args: Q.args,
        **kwargs: Q.kwargs,
    ) -> T | _FR: ...

    async def call_async(
        self, func: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any
    ) -> Any:
        """
        Await ``func(*args, **kwargs)`` through the breaker and return its result.

        When the circuit rejects the call, the fallback (if any) is called with
        ``*args`` and ``**kwargs`` instead, and awaited if it is async.

        Raises:
            CircuitOpenError: The circuit rejected the call and there is no
                fallback.
            Exception: Whatever *func* raises, unchanged.
        """
        return await self._protect_async(func)(*args, **kwargs)

    def __enter__(self) -> Self:
        """Admit the block as one call, or raise :class:`CircuitOpenError`."""
        now = self._now()
        spell = self._spell
        if spell.state is not _CLOSED:
            admitted = self._admit(serve_fallback=False)
            assert admitted is not None  # noqa: S101 - without a fallback it raises
            spell = admitted
        try:
            block = _Block(self, spell, now, _blocks.get())
            with _OPEN_BLOCKS_LOCK:
                _open_blocks.setdefault(id(self), []).append(block)
        except BaseException:
            self._abandon(spell)
            raise
        _blocks.set(block)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Record the block's outcome; exceptions propagate unchanged."""
        block = self._pop_block()
        if exc is None or isinstance(exc, Exception):
            self._finish(block.spell, block.start, exc)
        else:
            self._abandon(block.spell)

    async def __aenter__(self) -> Self:
        """Admit the block as one call, or raise :class:`CircuitOpenError`."""
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Record the block's outcome; exceptions propagate unchanged."""
        self.__exit__(exc_type, exc, traceback)

    def _pop_block(self) -> _Block:
        """Find and close the block an ``__exit__`` ends."""
        top = _blocks.get()
        with _OPEN_BLOCKS_LOCK:
            opened = _open_blocks.get(id(self), [])
            block = top
            while block is not None and (
                block.breaker is not self or block not in opened
            ):
                block = block.outer
            if block is None:
                # Entered in another context: a generator stepped in fresh
                # context copies (thread pools), or an async generator closed
                # by another task. Close the newest open block, so that it is
                # still counted once and frees its probe slot.
                if not opened:
                    raise RuntimeError(
                        f"circuit breaker {self._name!r} exited a block it did"
                        " not enter"
                    )
                block = opened[-1]
            opened.remove(block)
            if not opened:
                del _open_blocks[id(self)]
        if block is top:
            _blocks.set(block.outer)
        return block

    def _check_sync_fallback(self, func: Callable[..., Any]) -> None:
        if self._fallback is not None and is_async_callable(self._fallback):
            raise TypeError(
                f"breaker {self._name!r} has an async fallback, which cannot serve"
                f" the sync function {getattr(func, '__qualname__', func)!r}"
            )

    def _protect_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return _sync_protector(self, func)

    def _protect_async(
        self, func: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        return _async_protector(self, func)

    def _serve(self) -> Callable[..., Any]:
        """Return the fallback, which ``_admit`` chose to serve a rejected call."""
        return cast("Callable[..., Any]", self._fallback)

    def _succeed(self, spell: _Spell, start: float | None) -> None:
        """Record a call that returned."""
        extras = self._extras
        if (
            spell.state is not _CLOSED
            or not _GIL
            or (extras is not None and extras.window is not None)
        ):
            self._finish(spell, start, None)
            return
        duration = None
        if start is not None:
            duration = self._now() - start
            # From here to the end of the block: no calls, so no thread switch
            # (see _GIL). Not one of these updates can be lost or seen half-done.
            self._timed += 1
            self._duration += duration
        self._successes += 1
        if self._consecutive_failures and spell is self._spell:
            self._consecutive_failures = 0
        if self._observed():
            self._report_call(duration, None, failed=False)

    # -- the state machine --------------------------------------------------

    def _observed(self) -> bool:
        """Whether a sink or hook wants to hear about each call."""
        extras = self._extras
        return _ports.current.sink is not None or (
            extras is not None and (extras.sink is not None or extras.hooks is not None)
        )

    def _now(self) -> float:
        extras = self._extras
        if extras is None or extras.clock is None:
            return _ports.current.monotonic()
        return extras.clock.monotonic()

    def _guard(self) -> threading.Lock:
        """Return the breaker's lock, made on first need."""
        lock = self._lock
        if lock is None:
            with _LOCK_CREATION:
                lock = self._lock
                if lock is None:
                    lock = self._lock = threading.Lock()
        return lock

    def _admit(self, *, serve_fallback: bool) -> _Spell | None:
        """
        Admit, under the lock, a call while the circuit is not closed.

        Returns the spell the call runs under; or, having counted the
        rejection, ``None`` when the fallback is to serve the call.

        Raises:
            CircuitOpenError: The call is rejected and no fallback serves it.
        """
        with self._guard():
            # Decide on the time read under the lock: a thread held up after
            # reading the clock must not start a spell that is already old.
            now = self._now()
            change = self._maybe_half_open(now)
            spell = self._spell
            admitted = spell.state is _CLOSED or (
                spell.state is _HALF_OPEN
                and self._probes < self._config.half_open_max_calls
            )
            if not admitted:
                self._rejected += 1
            elif spell.state is _HALF_OPEN:
                self._probes += 1
        if change is not None:
            try:
                self._announce(change)
            except BaseException:
                # A hook interrupted (Ctrl-C, cancellation): the call will not
                # run, so its probe slot must not stay taken.
                if admitted:
                    self._abandon(spell)
                raise
        if admitted:
            return spell
        retry_after = self._retry_after(spell, now) if spell.state is _OPEN else 0.0
        serve = serve_fallback and self._fallback is not None
        if listening(self._sink):
            emit(
                self._sink,
                CallRejected(
                    name=self._name,
                    state=spell.state,
                    retry_after=retry_after,
                    fallback=serve,
                ),
            )
        if serve:
            return None
        # Raised where it is made: an error kept in a local variable while it
        # is raised ties frame and traceback into a cycle for the GC to undo.
        raise CircuitOpenError(self._name, retry_after, spell.state)

    def _retry_after(self, spell: _Spell, now: float) -> float:
        return max(0.0, spell.until - now)

    def _maybe_half_open(self, now: float) -> _Change | None:
        """Under the lock: move open to half-open once the timeout has passed."""
        spell = self._spell
        if spell.state is _OPEN and now >= spell.until:
            return self._enter(_HALF_OPEN, now, "recovery_timeout")
        return None

    def _enter(
        self,
        new: CircuitState,
        now: float,
        reason: str,
        rates: tuple[int, float, float] | None = None,
    ) -> _Change | None:
        """Under the lock: start a new spell in state *new*."""
        spell = self._spell
        old = spell.state
        failed_probes = spell.failed_probes
        if new is _OPEN:
            if reason == "probe_failed":
                failed_probes += 1
            # A fresh recovery window even when already open (trip()).
            until = now + self._config.recovery_timeout_after(failed_probes)
            self._spell = _Spell(_OPEN, until, failed_probes)
            if old is _OPEN:
                return None
            self._trips += 1
        elif old is new:
            return None
        else:
            self._spell = _Spell(
                new, failed_probes=0 if new is _CLOSED else failed_probes
            )
        self._consecutive_failures = 0
        if self._window is not None:
            self._window.clear()
        return (old, new, reason, now, rates)

    def _finish(
        self, spell: _Spell, start: float | None, error: Exception | None
    ) -> None:
        """Record, under the lock, the outcome of a call that ran under *spell*."""
        end = self._now()
        duration = None if start is None else end - start
        failed = error is not None and self._config.counts_as_failure(error)
        with self._lock or self._guard():
            if duration is not None:
                self._timed += 1
                self._duration += duration
            if failed:
                self._failures += 1
            else:
                self._successes += 1
            if spell.state is _HALF_OPEN:
                self._probes -= 1
            change = self._judge(spell, self._now(), duration, failed=failed)
        # The call's outcome first, then the change of state it caused.
        if self._observed():
            self._report_call(duration, error, failed=failed)
        if change is not None:
            self._announce(change)

    def _judge(
        self, spell: _Spell, now: float, duration: float | None, *, failed: bool
    ) -> _Change | None:
        """Under the lock: move the state machine for one outcome, if not late."""
        if spell is not self._spell:
            return None
        if spell.state is _HALF_OPEN:
            if failed:
                return self._enter(_OPEN, now, "probe_failed")
            spell.probe_successes += 1
            if spell.probe_successes >= self._config.success_threshold:
                return self._enter(_CLOSED, now, "probes_succeeded")
        elif self._extras is not None and (window := self._extras.window) is not None:
            reason = window.record(failed, duration, now)
            if reason is not None:
                return self._enter(_OPEN, now, reason, window.rates(now))
        elif failed:
            self._consecutive_failures += 1
            if self._consecutive_failures >= self._config.failure_threshold:
                return self._enter(_OPEN, now, "failure_threshold")
        elif self._consecutive_failures:
            self._consecutive_failures = 0
        return None

    def _abandon(self, spell: _Spell) -> None:
        """Free the probe slot of a call ended by a non-Exception (cancellation)."""
        if spell.state is _HALF_OPEN:
            with self._guard():
                self._probes -= 1

    def _report_call(
        self, duration: float | None, error: Exception | None, *, failed: bool
    ) -> None:
        # An untimed call has no duration only if no sink listened when it
        # started; one added since then misses this call's event.
        if duration is not None and listening(self._sink):
            emit(
                self._sink,
                CallFailed(name=self._name, duration=duration, error=error)
                if failed and error is not None
                else CallSucceeded(name=self._name, duration=duration, error=error),
            )
        self._run_hooks("on_failure" if failed else "on_success")

    def _announce(self, change: _Change) -> None:
        """Outside the lock: tell sinks and hooks about a change of state."""
        old, new, reason, at, rates = change
        if listening(self._sink):
            emit(
                self._sink,
                StateChanged(
                    name=self._name,
                    old=old,
                    new=new,
                    reason=reason,
                    at=at,
                    window_calls=None if rates is None else rates[0],
                    failure_rate=None if rates is None else rates[1],
                    slow_call_rate=None if rates is None else rates[2],
                ),
            )
        self._run_hooks(_STATE_HOOKS[new])


# The two protectors build the function that runs each protected call. Their
# bodies are twins (one awaits): a healthy call's whole path is written out
# inline, because each extra Python call on it would cost as much as all of
# its bookkeeping. For the decorator, _inspect.specialize re-creates them with
# the decorated function's own parameters instead of *args and **kwargs.


def _sync_protector(  # noqa: C901 - inlined on purpose
    breaker: CircuitBreaker[Any, Any], func: Callable[..., Any]
) -> Callable[..., Any]:
    current = _ports.current

    def protected(*args: Any, **kwargs: Any) -> Any:
        spell = breaker._spell
        closed = spell.state is _CLOSED
        if not closed:
            if (
                breaker._extras is None
                and current.sink is None
                and spell.until > (now := current.monotonic())
            ):
                # Quiet and still open: reject without the lock (_GIL).
                breaker._rejected += 1
                if breaker._fallback is None:
                    raise CircuitOpenError(breaker._name, spell.until - now, _OPEN)
                admitted = None
            else:
                admitted = breaker._admit(serve_fallback=True)
            if admitted is None:
                return breaker._serve()(*args, **kwargs)
            spell = admitted
        start = None
        try:
            # The mask is 0 (time every call) while a process-wide sink
            # listens. Inside the try: an interruption here frees a slot.
            if not (breaker._successes & current.mask and breaker._extras is None):
                start = breaker._now()
            result = func(*args, **kwargs)
        except Exception as error:
            breaker._finish(spell, start, error)
            raise
        except BaseException:
            breaker._abandon(spell)
            raise
        if start is None and closed:
            # Untimed, so quiet (see _Extras). No calls in this block: no
            # thread switch inside it (see _GIL).
            breaker._successes += 1
            if breaker._consecutive_failures and spell is breaker._spell:
                breaker._consecutive_failures = 0
            return result
        breaker._succeed(spell, start)
        return result

    return protected


def _async_protector(  # noqa: C901 - inlined on purpose
    breaker: CircuitBreaker[Any, Any], func: Callable[..., Awaitable[Any]]
) -> Callable[..., Coroutine[Any, Any, Any]]:
    current = _ports.current

    async def protected(*args: Any, **kwargs: Any) -> Any:  # noqa: C901 - inlined
        spell = breaker._spell
        closed = spell.state is _CLOSED
        if not closed:
            if (
                breaker._extras is None
                and current.sink is None
                and spell.until > (now := current.monotonic())
            ):
                # Quiet and still open: reject without the lock (_GIL).
                breaker._rejected += 1
                if breaker._fallback is None:
                    raise CircuitOpenError(breaker._name, spell.until - now, _OPEN)
                admitted = None
            else:
                admitted = breaker._admit(serve_fallback=True)
            if admitted is None:
                served = breaker._serve()(*args, **kwargs)
                if inspect.isawaitable(served):
                    served = await served
                return served
            spell = admitted
        start = None
        try:
            # The mask is 0 (time every call) while a process-wide sink
            # listens. Inside the try: an interruption here frees a slot.
            if not (breaker._successes & current.mask and breaker._extras is None):
                start = breaker._now()
            result = await func(*args, **kwargs)
        except Exception as error:
            breaker._finish(spell, start, error)
            raise
        except BaseException:
            breaker._abandon(spell)
            raise
        if start is None and closed:
            # Untimed, so quiet (see _Extras). No calls in this block: no
            # thread switch inside it (see _GIL).
            breaker._successes += 1
            if breaker._consecutive_failures and spell is breaker._spell:
                breaker._consecutive_failures = 0
            return result
        breaker._succeed(spell, start)
        return result

    return protected
