"""
The circuit breaker: it wraps the state machine, records and announces.

Each protected call is admitted, run and recorded in three steps, each with
one owner:

- **decide**: :class:`~._machine.Machine` decides admission and changes of
  state, under the breaker's lock, on the time the breaker read;
- **record**: the breaker keeps the totals (calls, rejections, trips,
  durations) for :meth:`CircuitBreaker.get_metrics`;
- **announce**: after the lock is released, transitions and per-call
  outcomes go to sinks and hooks.

A healthy call on a quiet breaker (closed, and nobody listening to each call)
changes no decision, so it takes no lock: it leaves a token on the breaker's
pending list (see :mod:`._tally`), which the breaker folds into its totals
before every decision and snapshot.
"""

from __future__ import annotations

import inspect
import threading
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Generic, TypedDict, cast, final, overload

from . import _fork, _ports
from ._blocks import OpenBlocks
from ._config import BreakerConfig
from ._errors import CircuitOpenError, UnwantedResult
from ._events import (
    CallFailed,
    CallRejected,
    CallSucceeded,
    StateChanged,
    emit,
    logger,
)
from ._hooks import Hook, check_hook, run_hooks
from ._machine import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitState,
    Machine,
    Spell,
    Ticket,
    Transition,
    Window,
)
from ._ports import Clock, EventSink, Timer, check_port
from ._protect import decorate, is_async_callable
from ._registry import registry
from ._store import Store
from ._tally import FOLD_AT, take
from ._validation import check_name, span


@final
class NoFallback:
    """
    The result type of a breaker built without a fallback (never instantiated).

    ``CircuitBreaker("api")`` is a ``CircuitBreaker[..., NoFallback]``: its
    decorator returns the decorated function's own type, exactly. A breaker
    with a fallback has a real result type, and its decorator checks the
    function against the fallback instead. Only type checkers see it: annotate
    ``CircuitBreaker[..., NoFallback]`` (or a bare ``CircuitBreaker``) for a
    breaker without a fallback, ``CircuitBreaker[..., Any]`` for any breaker.

    .. versionadded:: 0.1.0
    """


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Mapping
    from types import TracebackType

    from typing_extensions import ParamSpec, Self, TypeVar

    from ._store import Link

    P = ParamSpec("P", default=...)
    R = TypeVar("R", default=NoFallback)
else:
    from typing import ParamSpec, TypeVar

    P = ParamSpec("P")
    R = TypeVar("R")

# Method-scoped type variables.
Q = ParamSpec("Q")
T = TypeVar("T")
_FR = TypeVar("_FR")
_F = TypeVar("_F", bound="Callable[..., Any]")
_CM = TypeVar("_CM", bound="classmethod[Any, Any, Any]")

__all__ = ["BreakerMetrics", "CircuitBreaker", "NoFallback"]

_DEFAULT_CONFIG: Final = BreakerConfig()

# The token a rejection on the lock-free path leaves (a success leaves the
# spell it ran under).
_REJECTED: Final = object()

_NO_HOOKS: Final[Mapping[str, tuple[Hook, ...]]] = MappingProxyType({})


# Hooks that run for every call: a breaker with one is not quiet.
_PER_CALL_HOOKS: Final = frozenset({"on_success", "on_failure"})

_STATE_HOOKS: Final = {
    OPEN: "on_open",
    CLOSED: "on_close",
    HALF_OPEN: "on_half_open",
}


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
        store: Shares the circuit with every breaker of the same name in
            other processes (:class:`aiobreakers.redis.RedisStore`); ``None``
            keeps it in this process.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: *name* is empty, or *store* cannot share this breaker
            (the message says why).
    """

    __slots__ = (
        "__weakref__",
        "_blocks",
        "_duration",
        "_failures",
        "_fallback",
        "_hooks",
        "_link",
        "_lock",
        "_machine",
        "_name",
        "_pending",
        "_quiet",
        "_rejected",
        "_sink",
        "_successes",
        "_timed",
        "_timer",
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
        store: Store | None = None,
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
        store: Store | None = None,
    ) -> None: ...

    def __init__(  # noqa: PLR0913 - every port is keyword-only
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        fallback: Callable[P, R] | Callable[P, Awaitable[R]] | None = None,
        clock: Clock | None = None,
        sink: EventSink | None = None,
        store: Store | None = None,
    ) -> None:
        check_name(name)
        if config is None:
            config = _DEFAULT_CONFIG
        elif not isinstance(config, BreakerConfig):
            raise TypeError(f"config must be a BreakerConfig, got {config!r}")
        if fallback is not None and not callable(fallback):
            raise TypeError(f"fallback must be callable, got {fallback!r}")
        self._name = name
        # Stored erased: R must not appear in a mutable attribute.
        self._fallback: Callable[..., Any] | None = fallback
        # The process-wide defaults are a Timer too, read at each call.
        self._timer: Timer = (
            _ports.current
            if clock is None
            else Timer(check_port(clock, Clock, "clock"))
        )
        self._sink = None if sink is None else check_port(sink, EventSink, "sink")
        self._hooks: Mapping[str, tuple[Hook, ...]] = _NO_HOOKS
        self._machine = Machine(config)
        # Made on first need, like the pending list: see _guard.
        self._lock: threading.Lock | None = None
        self._pending: list[object] | None = None
        self._blocks: OpenBlocks | None = None
        self._quiet = self._is_quiet()
        self._zero_counters()
        self._link: Link | None = None
        if store is not None:
            if not isinstance(store, Store):
                raise TypeError(
                    f"store must be a store such as aiobreakers.redis.RedisStore,"
                    f" got {store!r}"
                )
            self._link = store.attach(self)
        registry._add_breaker(self)

    def _zero_counters(self) -> None:
        self._successes = 0
        self._failures = 0
        self._rejected = 0
        self._trips = 0
        self._timed = 0
        self._duration = 0.0

    def _is_quiet(self) -> bool:
        """
        Whether healthy calls may take the short path (see the protectors).

        Nothing of the breaker's own may want to hear of each call, and a
        window must take successes in bulk.
        """
        window = self._machine.window
        return (
            self._sink is None
            and self._machine.config.failure_on_result is None
            and (window is None or window.takes_bulk)
            and _PER_CALL_HOOKS.isdisjoint(self._hooks)
        )

    # -- public properties --------------------------------------------------

    @property
    def name(self) -> str:
        """The breaker's name."""
        return self._name

    @property
    def config(self) -> BreakerConfig:
        """The breaker's configuration."""
        return self._machine.config

    @property
    def state(self) -> CircuitState:
        """
        The current state.

        Reading it moves an open circuit whose recovery timeout has passed to
        half-open (there are no timer threads: the transition is lazy).
        """
        spell = self._machine.spell
        if spell.state is OPEN:
            with self._lock or self._guard():
                change = self._machine.poll(self._time())
                spell = self._machine.spell
            self._announce(change)
        return spell.state

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self._name!r} state={self._machine.spell.state}>"

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
        check_hook(callback, hook, 1)
        with self._lock or self._guard():
            # Replaced, never mutated: readers iterate without the lock.
            self._hooks = {**self._hooks, hook: (*self._hooks.get(hook, ()), callback)}
            self._quiet = self._is_quiet()
        return callback

    def _run_hooks(self, hook: str) -> None:
        callbacks = self._hooks.get(hook)
        if callbacks:
            run_hooks(callbacks, (self,), owner=self._name, hook=hook, sink=self._sink)

    # -- forcing ------------------------------------------------------------

    def trip(self) -> None:
        """
        Force the circuit open, with a fresh recovery timeout.

        A trip is counted only when the state changes. An open circuit whose
        recovery timeout has passed counts as half-open here, as it would for
        a call, so whether the state was read first makes no difference.
        """
        self._force(OPEN, "trip")

    def _force(self, state: CircuitState, reason: str = "forced") -> None:
        """Put the circuit in *state* now (``"forced"``: for aiobreakers.testing)."""
        if state is CLOSED:
            self.reset()
            return
        with self._lock or self._guard():
            now = self._time()
            machine = self._machine
            changes = (
                machine.trip(now, reason)
                if state is OPEN
                else machine.force_half_open(now)
            )
            self._count_trips(changes)
            if self._link is not None:
                for change in changes:
                    self._share(change)
        for change in changes:
            self._announce(change)

    def reset(self) -> None:
        """
        Force the circuit closed and zero every counter.

        Calls still running finish normally: they update the fresh totals but
        do not move the state machine.
        """
        with self._lock or self._guard():
            if self._pending:
                take(self._pending)  # calls that finished before the reset
            now = self._time()
            change = self._machine.reset(now)
            self._zero_counters()
            if self._link is not None:
                # Shared even when this process was closed already: another
                # may not be.
                self._share(change or Transition(CLOSED, CLOSED, "reset", now))
        self._announce(change)

    # -- metrics ------------------------------------------------------------

    def get_metrics(self) -> BreakerMetrics:
        """
        Return a snapshot of the breaker's counters, rates and state.

        The snapshot is consistent: every figure in it is read under the
        breaker's lock, at one moment, after the lazy move from open to
        half-open.
        """
        with self._lock or self._guard():
            now = self._time()
            machine = self._machine
            change = machine.poll(now)
            self._fold_pending()
            successes, failures = self._successes, self._failures
            rejected, trips = self._rejected, self._trips
            timed, duration = self._timed, self._duration
            state = machine.spell.state
            until_recovery = machine.retry_after(now)
            rates = machine.rates(now)
        self._announce(change)
        calls = successes + failures
        return {
            "name": self._name,
            "state": state.value,
            "total_calls": calls,
            "total_successes": successes,
            "total_failures": failures,
            "total_rejected": rejected,
            "total_trips": trips,
            "success_rate": successes / calls if calls else 0.0,
            "failure_rate": failures / calls if calls else 0.0,
            "avg_call_duration_ms": duration / timed * 1000.0 if timed else 0.0,
            "time_until_recovery": until_recovery,
            "window_calls": None if rates is None else rates[0],
            "window_failure_rate": None if rates is None else rates[1],
            "window_slow_call_rate": None if rates is None else rates[2],
        }

    # -- protecting calls ---------------------------------------------------

    # Without a fallback the decorator is typed as the identity: the wrapper has
    # the function's exact type. With one, the function must fit the
    # fallback's parameters and result, async (listed first, so that a
    # fallback returning object keeps a coroutine function async) or sync.
    # The last overload is there for what does not fit: pyright reports the
    # last overload it tried, so the error names both shapes that would.
    @overload
    def __call__(self: CircuitBreaker[..., NoFallback], func: _F, /) -> _F: ...

    @overload
    def __call__(self: CircuitBreaker[..., NoFallback], func: _CM, /) -> _CM: ...

    @overload
    def __call__(
        self: CircuitBreaker[Q, T], func: Callable[Q, Coroutine[Any, Any, T]], /
    ) -> Callable[Q, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(
        self: CircuitBreaker[Q, T], func: Callable[Q, T], /
    ) -> Callable[Q, T]: ...

    @overload
    def __call__(
        self: CircuitBreaker[Q, T],
        func: Callable[Q, T] | Callable[Q, Coroutine[Any, Any, T]],
        /,
    ) -> Callable[Q, T] | Callable[Q, Coroutine[Any, Any, T]]: ...

    def __call__(self, func: Any, /) -> Any:
        """
        Decorate *func* so that every call to it goes through the breaker.

        Works on sync and async functions, on methods, and on ``staticmethod``
        and ``classmethod`` objects (whichever decorator is on top); the
        wrapper keeps the function's signature, name and docstring.

        Raises:
            TypeError: *func* is not callable, is a generator function, or is
                sync while the fallback is async.
        """
        protector: Callable[..., Any] = decorate(
            func, "circuit breaker", self._protect_sync, self._protect_async
        )
        return protector

    @overload
    def call_sync(
        self: CircuitBreaker[..., NoFallback],
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
        return self._run_sync(func, args, kwargs)

    @overload
    async def call_async(
        self: CircuitBreaker[..., NoFallback],
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
        return await self._run_async(func, args, kwargs)

    def __enter__(self) -> Self:
        """Admit the block as one call, or raise :class:`CircuitOpenError`."""
        ticket = Ticket()
        try:
            spell, start = self._admit(ticket, serve_fallback=False)
            if spell is not None and spell.state is HALF_OPEN and self._link:
                allowed = self._link.claim(ticket)
                spell, start = self._claimed(
                    ticket, spell, allowed, serve_fallback=False
                )
            return self._enter_block(ticket, spell, start)
        except BaseException:
            self._drop(ticket)
            raise

    def _enter_block(self, ticket: Ticket, spell: Spell | None, start: float) -> Self:
        assert spell is not None  # noqa: S101 - without a fallback it raises
        self._open_blocks().enter(spell, start, ticket)
        return self

    def _drop(self, ticket: Ticket) -> None:
        """Give back what *ticket* holds: its call ends without an outcome."""
        ticket.done = True  # no signal can strike between these two
        self._release(ticket)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Record the block's outcome; exceptions propagate unchanged."""
        blocks = self._blocks
        if blocks is None:
            raise RuntimeError(
                f"circuit breaker {self._name!r} exited a block it did not enter"
            )
        # Marks the block's ticket done: from here on, whatever interrupts
        # this exit, the slot comes back at the next admission.
        block = blocks.exit(self._name)
        if exc is None or isinstance(exc, Exception):
            self._finish(block.spell, block.start, exc, block.ticket)
        else:
            self._release(block.ticket)

    def _open_blocks(self) -> OpenBlocks:
        blocks = self._blocks
        if blocks is None:
            with self._lock or self._guard():
                blocks = self._blocks
                if blocks is None:
                    blocks = self._blocks = OpenBlocks()
        return blocks

    async def __aenter__(self) -> Self:
        """Admit the block as one call, or raise :class:`CircuitOpenError`."""
        if self._link is None:
            return self.__enter__()
        ticket = Ticket()
        try:
            spell, start = self._admit(ticket, serve_fallback=False)
            if spell is not None and spell.state is HALF_OPEN:
                allowed = await self._link.claim_async(ticket)
                spell, start = self._claimed(
                    ticket, spell, allowed, serve_fallback=False
                )
            return self._enter_block(ticket, spell, start)
        except BaseException:
            self._drop(ticket)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Record the block's outcome; exceptions propagate unchanged."""
        self.__exit__(exc_type, exc, traceback)

    # -- the full path: any state, any listener ------------------------------

    def _check_sync_fallback(self, func: Callable[..., Any]) -> None:
        if self._fallback is not None and is_async_callable(self._fallback):
            raise TypeError(
                f"breaker {self._name!r} has an async fallback, which cannot serve"
                f" the sync function {getattr(func, '__qualname__', func)!r}"
            )

    # The full path. A call that may take a probe slot gets a ticket first,
    # and gives the slot back in a finally block, whatever interrupts it and
    # wherever: before or after admission, in its own bookkeeping, in a hook.
    # The machine keeps the slot under the ticket (one dict entry, added and
    # removed in single operations), so there is no moment at which a slot is
    # taken but not yet known to be the ticket's. Should even the finally
    # block be interrupted, the slot is reclaimed after probe_timeout.

    def _run_sync(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run one call through every step: admit, call, record, announce."""
        ticket = Ticket()
        try:
            spell, start = self._admit(ticket, serve_fallback=True)
            if spell is not None and spell.state is HALF_OPEN and self._link:
                allowed = self._link.claim(ticket)
                spell, start = self._claimed(
                    ticket, spell, allowed, serve_fallback=True
                )
            if spell is None:
                return self._serve_sync(args, kwargs)
            try:
                result = func(*args, **kwargs)
            except Exception as error:
                self._finish(spell, start, error, ticket)
                raise
            self._finish(spell, start, self._judge_result(result), ticket)
            return result
        finally:
            ticket.done = True  # no signal can strike between these two
            self._release(ticket)

    async def _run_async(
        self,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Run one call through every step, awaiting the call and the fallback."""
        ticket = Ticket()
        try:
            spell, start = self._admit(ticket, serve_fallback=True)
            if spell is not None and spell.state is HALF_OPEN and self._link:
                allowed = await self._link.claim_async(ticket)
                spell, start = self._claimed(
                    ticket, spell, allowed, serve_fallback=True
                )
            if spell is None:
                served = cast("Callable[..., Any]", self._fallback)(*args, **kwargs)
                return (await served) if inspect.isawaitable(served) else served
            try:
                result = await func(*args, **kwargs)
            except Exception as error:
                self._finish(spell, start, error, ticket)
                raise
            self._finish(spell, start, self._judge_result(result), ticket)
            return result
        finally:
            ticket.done = True  # no signal can strike between these two
            self._release(ticket)

    def _serve_sync(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call the fallback for a sync caller; it must not hand back an awaitable."""
        served = cast("Callable[..., Any]", self._fallback)(*args, **kwargs)
        if inspect.isawaitable(served):
            if inspect.iscoroutine(served):
                served.close()  # never awaited: say so here, not in a warning
            raise TypeError(
                f"the fallback of breaker {self._name!r} returned an awaitable"
                f" ({type(served).__name__}) to a sync caller, which cannot await"
                " it: give sync functions a sync fallback"
            )
        return served

    def _time(self) -> float:
        """Under the lock: the time to decide on (see ``Machine.observe``)."""
        return self._machine.observe(self._timer.monotonic())

    def _admit(
        self, ticket: Ticket, *, serve_fallback: bool
    ) -> tuple[Spell | None, float]:
        """
        Admit a call, and read the time it starts at.

        Returns:
            The spell the call runs under, or ``None`` when the fallback is to
            serve it; and the start time.

        Raises:
            CircuitOpenError: The call is rejected and no fallback serves it.
        """
        spell = self._machine.spell
        if spell.state is CLOSED:
            return spell, self._timer.monotonic()
        with self._lock or self._guard():
            # Decided on the time read under the lock: a thread held up after
            # reading the clock must not start a spell that is already old.
            now = self._time()
            admitted, change = self._machine.admit(now, ticket)
            if admitted is None:
                self._rejected += 1
                rejected = self._machine.spell
                retry_after = self._machine.retry_after(now)
        self._announce(change)
        if admitted is not None:
            return admitted, now
        self._refuse(rejected.state, retry_after, serve_fallback)
        return None, now

    def _refuse(
        self, state: CircuitState, retry_after: float, serve_fallback: bool
    ) -> None:
        """
        Report a rejected call; return when the fallback is to serve it.

        Raises:
            CircuitOpenError: No fallback serves it.
        """
        serve = serve_fallback and self._fallback is not None
        if self._sink is not None or _ports.current.sink is not None:
            emit(
                self._sink,
                CallRejected(
                    name=self._name,
                    state=state,
                    retry_after=retry_after,
                    fallback=serve,
                ),
            )
        if not serve:
            raise CircuitOpenError(self._name, retry_after, state)

    def _claimed(
        self, ticket: Ticket, spell: Spell, allowed: bool, *, serve_fallback: bool
    ) -> tuple[Spell | None, float]:
        """
        After asking the fleet for a probe permit: run the call, or reject it.

        Returns the spell to run under (``None``: the fallback serves) and the
        start time, read after the wait so that it is not in the duration.
        """
        if allowed:
            return spell, self._timer.monotonic()
        self._release(ticket)
        with self._lock or self._guard():
            now = self._time()
            self._rejected += 1
            state = self._machine.spell.state
            retry_after = self._machine.retry_after(now)
        self._refuse(state, retry_after, serve_fallback)
        return None, now

    def _finish(
        self,
        spell: Spell,
        start: float | None,
        error: Exception | None,
        ticket: Ticket | None = None,
    ) -> None:
        """Record, under the lock, the outcome of a call admitted under *spell*."""
        failed = error is not None and self._counts_as_failure(error)
        with self._lock or self._guard():
            now = self._time()
            if self._pending:
                self._fold_pending()
            duration = None if start is None else span(start, now)
            if duration is not None:
                self._timed += 1
                self._duration += duration
            if failed:
                self._failures += 1
            else:
                self._successes += 1
            change = (
                self._machine.record(spell, now, duration, failed=failed, ticket=ticket)
                if self._link is None
                else self._record_shared(spell, now, duration, failed, ticket)
            )
            if change is not None and change.new is OPEN:
                self._trips += 1
        # The call's outcome first, then the change of state it caused.
        if duration is not None and (
            self._sink is not None or _ports.current.sink is not None
        ):
            emit(
                self._sink,
                CallFailed(name=self._name, duration=duration, error=error)
                if failed and error is not None
                else CallSucceeded(name=self._name, duration=duration, error=error),
            )
        if self._hooks:
            self._run_hooks("on_failure" if failed else "on_success")
        if change is not None:
            self._announce(change)

    def _record_shared(
        self,
        spell: Spell,
        now: float,
        duration: float | None,
        failed: bool,
        ticket: Ticket | None,
    ) -> Transition | None:
        """Under the lock: move the machine by one outcome, and tell the store."""
        machine = self._machine
        link = self._link
        assert link is not None  # noqa: S101 - only breakers with a store
        if ticket is not None and ticket.permit is not None:
            # A fleet-wide probe: the fleet judges it on every process's
            # probes. A failure also opens here at once; a success alone
            # must not close here what the fleet still probes.
            permit, ticket.permit = ticket.permit, None
            link.probe_done(permit, failed=failed)
            if not failed:
                machine.release(ticket)
                return None
            return machine.record(spell, now, duration, failed=True, ticket=ticket)
        if link.tallies and spell.state is CLOSED and spell is machine.spell:
            link.tally(failed, duration)
        change = machine.record(spell, now, duration, failed=failed, ticket=ticket)
        if change is not None:
            self._share(change)
        return change

    def _share(self, change: Transition) -> None:
        """Under the lock: tell the store of a change the machine made."""
        link = self._link
        if link is not None:
            machine = self._machine
            link.changed(
                change,
                length=machine.spell.length,
                failed_probes=machine.failed_probes,
            )

    def _judge_result(self, result: object) -> UnwantedResult | None:
        """
        Apply failure_on_result: an UnwantedResult for a result that fails.

        The predicate is user code: if it raises, the result counts as a
        success (as without a predicate) and the predicate's error is logged.
        """
        predicate = self._machine.config.failure_on_result
        if predicate is None:
            return None
        try:
            failed = bool(predicate(result))
        except Exception:  # noqa: BLE001 - a broken predicate must not break the call
            logger.exception(
                "failure_on_result of breaker %r raised on %r; counting a success",
                self._name,
                result,
            )
            return None
        return UnwantedResult(result) if failed else None

    def _counts_as_failure(self, error: Exception) -> bool:
        """
        Apply the exception filters; a filter that raises counts a failure.

        A class in ``included_exceptions`` or ``excluded_exceptions`` may run
        code when checked (a metaclass ``__instancecheck__``); if it raises,
        the call's own error still reaches the caller, counted as a failure,
        and the filter's error is logged.
        """
        if isinstance(error, UnwantedResult):
            return True  # failure_on_result said so
        try:
            return self._machine.config.counts_as_failure(error)
        except Exception:  # noqa: BLE001 - a broken filter must not break the call
            logger.exception(
                "the exception filters of breaker %r raised while checking %r;"
                " counting it as a failure",
                self._name,
                error,
            )
            return True

    def _release(self, ticket: Ticket) -> None:
        """Give back the probe slot *ticket* holds, if it still holds one."""
        permit = ticket.permit
        if permit is not None and self._link is not None:
            ticket.permit = None
            self._link.release(permit)
        if self._machine.holds(ticket):
            with self._lock or self._guard():
                self._machine.release(ticket)

    # -- the lock-free path's bookkeeping -----------------------------------

    def _fold_pending(self) -> None:
        """Under the lock: count the calls that left tokens on the pending list."""
        if not self._pending:
            return
        tokens = take(self._pending)
        if tokens:
            rejected = tokens.count(_REJECTED)
            self._rejected += rejected
            self._successes += len(tokens) - rejected
            self._machine.absorb(tokens)

    def _guard(self) -> threading.Lock:
        """
        Return the breaker's lock, made on first need.

        Most breakers in a large process sit idle; neither their lock nor
        their pending list is made until they are used.
        """
        lock = self._lock
        if lock is None:
            with _fork.making.lock:
                lock = self._lock
                if lock is None:
                    lock = self._lock = threading.Lock()
                    _fork.register(self, CircuitBreaker._renew_after_fork)
        return lock

    def _renew_after_fork(self) -> None:
        """
        In a forked child: new locks, and no probe slots of the parent's calls.

        The child keeps the state and totals its parent had; a call in flight
        in another thread of the parent never finishes here.
        """
        self._lock = threading.Lock()
        self._machine.forget_probes()
        if self._blocks is not None:
            self._blocks.renew_after_fork()

    def _store_update(
        self,
        update: Callable[[Machine, float], Transition | None],
        *,
        announce: bool = True,
    ) -> Transition | None:
        """
        For a store: run ``update(machine, now)`` under the lock.

        The store brings the fleet's decisions over this way (with
        :meth:`Machine.adopt`); the transition it returns is counted like any
        other, and announced here unless the store announces it itself
        (:meth:`_announce`, from a thread of its own). Returns it.
        """
        with self._lock or self._guard():
            now = self._time()
            self._fold_pending()
            change = update(self._machine, now)
            if change is not None and change.new is OPEN:
                self._trips += 1
        if announce:
            self._announce(change)
        return change

    def _pending_tokens(self) -> list[object]:
        """Return the pending list, made for the first protector."""
        with self._lock or self._guard():
            if self._pending is None:
                self._pending = []
            return self._pending

    def _fold(self) -> None:
        """Fold the pending tokens now: the list has grown to :data:`FOLD_AT`."""
        with self._lock or self._guard():
            self._fold_pending()

    def _timed_success(self, start: float, end: float) -> None:
        """
        Add a timed healthy call's duration, folding the tokens if due.

        Its own token is already pending. On a clock that times every call
        this is the only place that folds; on the system clock, folding here
        before the list is due would restart the count that picks the calls
        to time (see the protectors).
        """
        duration = span(start, end)
        with self._lock or self._guard():
            if duration is not None:
                self._timed += 1
                self._duration += duration
            if self._pending is not None and len(self._pending) >= FOLD_AT:
                self._fold_pending()

    # -- announcing ---------------------------------------------------------

    def _count_trips(self, changes: list[Transition]) -> None:
        self._trips += sum(change.new is OPEN for change in changes)

    def _announce(self, change: Transition | None) -> None:
        """
        Outside the lock: tell sinks and hooks about a change of state.

        With a store, after the fleet's changes it has not yet told of (see
        :meth:`Link.announce <aiobreakers._store.Link.announce>`).
        """
        if change is None:
            return
        if self._link is not None:
            self._link.announce(self, change)
        else:
            self._tell(change)

    def _tell(self, change: Transition) -> None:
        """Emit *change* and run its hooks, now, on this thread."""
        if self._sink is not None or _ports.current.sink is not None:
            rates = change.rates
            emit(
                self._sink,
                StateChanged(
                    name=self._name,
                    old=change.old,
                    new=change.new,
                    reason=change.reason,
                    at=change.at,
                    window_calls=None if rates is None else rates[0],
                    failure_rate=None if rates is None else rates[1],
                    slow_call_rate=None if rates is None else rates[2],
                ),
            )
        self._run_hooks(_STATE_HOOKS[change.new])

    # -- protectors ---------------------------------------------------------

    # A protector wraps one function. A healthy call on a quiet breaker takes
    # the short path, inline (each extra Python call on it would cost as much
    # as its bookkeeping): closed, it runs the function and leaves the spell
    # as its token; open, it rejects and leaves a rejection token. Every other
    # call takes the full path (_run_sync, _run_async).

    def _bulk_window(self) -> tuple[Window | None, int]:
        """
        Return the window the short path must check, and its warm size.

        A window takes successes in bulk only once it holds ``minimum_calls``
        calls (see :attr:`Window.takes_bulk`); until then the full path
        counts each at once.
        """
        window = self._machine.window
        if window is None:
            return None, 0
        return window, window.window.minimum_calls

    def _protect_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:  # noqa: C901 - inline on purpose
        self._check_sync_fallback(func)
        breaker = self
        machine = self._machine
        pending = self._pending_tokens()
        timer = self._timer
        current = _ports.current
        window, warm = self._bulk_window()
        name = self._name
        fallback = self._fallback

        def protected(*args: Any, **kwargs: Any) -> Any:  # noqa: C901 - ditto
            spell = machine.spell
            if breaker._quiet and current.sink is None:
                if spell.state is CLOSED and (window is None or window.calls >= warm):
                    tokens = len(pending)
                    if tokens & timer.mask:
                        try:
                            result = func(*args, **kwargs)
                        except Exception as error:
                            breaker._finish(spell, None, error)
                            raise
                        pending.append(spell)
                        # Counted before the call: other threads may append
                        # meanwhile, at most one token each past FOLD_AT.
                        if tokens >= FOLD_AT - 1:
                            breaker._fold()
                        return result
                    start = timer.monotonic()
                    try:
                        result = func(*args, **kwargs)
                    except Exception as error:
                        breaker._finish(spell, start, error)
                        raise
                    pending.append(spell)
                    breaker._timed_success(start, timer.monotonic())
                    return result
                if spell.state is OPEN:
                    left = spell.until - timer.monotonic()
                    # More left than the spell lasts: the clock went back or
                    # was swapped; the full path rebases the deadline.
                    if 0.0 < left <= spell.length:
                        pending.append(_REJECTED)
                        if len(pending) >= FOLD_AT:
                            breaker._fold()
                        if fallback is None:
                            raise CircuitOpenError(name, left)
                        return breaker._serve_sync(args, kwargs)
            return breaker._run_sync(func, args, kwargs)

        return protected

    def _protect_async(  # noqa: C901 - inline on purpose
        self, func: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        breaker = self
        machine = self._machine
        pending = self._pending_tokens()
        timer = self._timer
        current = _ports.current
        window, warm = self._bulk_window()
        name = self._name
        fallback = self._fallback

        async def protected(*args: Any, **kwargs: Any) -> Any:  # noqa: C901 - ditto
            spell = machine.spell
            if breaker._quiet and current.sink is None:
                if spell.state is CLOSED and (window is None or window.calls >= warm):
                    if len(pending) & timer.mask:
                        try:
                            result = await func(*args, **kwargs)
                        except Exception as error:
                            breaker._finish(spell, None, error)
                            raise
                        pending.append(spell)
                        # Read again: other tasks append while this one waits.
                        if len(pending) >= FOLD_AT:
                            breaker._fold()
                        return result
                    start = timer.monotonic()
                    try:
                        result = await func(*args, **kwargs)
                    except Exception as error:
                        breaker._finish(spell, start, error)
                        raise
                    pending.append(spell)
                    breaker._timed_success(start, timer.monotonic())
                    return result
                if spell.state is OPEN:
                    left = spell.until - timer.monotonic()
                    # More left than the spell lasts: the clock went back or
                    # was swapped; the full path rebases the deadline.
                    if 0.0 < left <= spell.length:
                        pending.append(_REJECTED)
                        if len(pending) >= FOLD_AT:
                            breaker._fold()
                        if fallback is None:
                            raise CircuitOpenError(name, left)
                        served = fallback(*args, **kwargs)
                        return (await served) if inspect.isawaitable(served) else served
            return await breaker._run_async(func, args, kwargs)

        return protected
