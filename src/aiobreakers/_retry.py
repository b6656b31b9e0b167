"""Retry policies: configuration and the retry loop."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypedDict, TypeVar, overload

from . import _fork, _ports
from ._attempts import Attempts
from ._backoff import BackoffStrategy
from ._budget import RetryBudget
from ._errors import CircuitOpenError, UnwantedResult
from ._events import RetryExhausted, RetryScheduled, emit, listening, logger
from ._hooks import Hook, check_hook, run_hooks
from ._ports import Clock, EventSink, RandomSource, Sleeper, check_port
from ._protect import decorate
from ._registry import registry
from ._tally import take
from ._timeouts import within
from ._validation import (
    check_exceptions,
    check_int,
    check_name,
    check_seconds,
    is_finite,
    span,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

__all__ = ["RetryConfig", "RetryMetrics", "RetryPolicy"]

P = ParamSpec("P")
R = TypeVar("R")
_F = TypeVar("_F", bound="Callable[..., Any]")
_CM = TypeVar("_CM", bound="classmethod[Any, Any, Any]")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """
    When a retry policy retries, and how long it waits in between.

    Args:
        max_retries: Retries after the first attempt: at most
            ``max_retries + 1`` attempts in all. ``0`` never retries.
        base_delay: Seconds; the first cap of the backoff (see
            :class:`BackoffStrategy`).
        max_delay: Seconds; no delay exceeds it. Must be at least
            *base_delay*.
        strategy: How delays grow and are jittered.
        retryable_exceptions: Retry only exceptions of these types; empty
            means every :class:`Exception`.
        non_retryable_exceptions: Never retry exceptions of these types; wins
            over *retryable_exceptions*.
        deadline: Seconds for all attempts and waits of one call together,
            measured on the policy's clock from the start of the first
            attempt; ``None`` for no limit. A wait that would end past it is
            never started: the last error is re-raised at once (the
            :class:`RetryExhausted` event says ``reason="deadline"``). An
            async attempt still running at the deadline is cut there with
            :class:`TimeoutError`.
        attempt_timeout: Seconds one async attempt may run before it is
            cancelled and fails with :class:`TimeoutError` (retried by the
            usual filters); ``None`` for no limit. Async functions only: a
            policy with one refuses to protect a sync function. Deadline and
            timeout run on the policy's clock and sleeper, so a
            :class:`~aiobreakers.testing.FakeClock` drives them in tests.
        retry_on_result: Called with each attempt's result; True retries it
            like a failure. When retries run out the last result is
            returned, not raised. Hooks and events see an
            :class:`UnwantedResult` where they see an exception otherwise.
        delay_from: Called with each retryable error; returns the seconds the
            dependency asked to wait (say, from a ``Retry-After`` header, see
            :func:`parse_retry_after`), or ``None`` for the strategy's delay.
            A requested delay above *max_delay*, or past the deadline, ends
            the retries: retrying sooner would disobey the server.

    :class:`CircuitOpenError` is never retried unless it, or a subclass, is
    named in *retryable_exceptions* itself (``(Exception,)`` does not count):
    retrying a circuit that is known to be open wastes attempts. When it is,
    the policy waits at least the error's ``retry_after``; a ``retry_after``
    above *max_delay* ends the retries at once, as a server delay would
    (:class:`RetryExhausted` says ``reason="server_delay"``).
    Cancellation and other non-:class:`Exception` errors are never retried.

    Raises:
        TypeError: A field has the wrong type.
        ValueError: A field has a value out of range (negative retries or
            delays, ``max_delay < base_delay``, a non-:class:`Exception` type
            in an exception tuple). The message names the field.
    """

    max_retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    strategy: BackoffStrategy = BackoffStrategy.FULL_JITTER
    retryable_exceptions: tuple[type[Exception], ...] = ()
    non_retryable_exceptions: tuple[type[Exception], ...] = ()
    deadline: float | None = None
    attempt_timeout: float | None = None
    retry_on_result: Callable[[Any], object] | None = None
    delay_from: Callable[[Exception], float | None] | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_int(owner, "max_retries", self.max_retries, 0)
        check_seconds(owner, "base_delay", self.base_delay)
        check_seconds(owner, "max_delay", self.max_delay)
        if self.max_delay < self.base_delay:
            raise ValueError(
                f"{owner}.max_delay must be >= base_delay ({self.base_delay!r}),"
                f" got {self.max_delay!r}"
            )
        if not isinstance(self.strategy, BackoffStrategy):
            choices = ", ".join(f"BackoffStrategy.{s.name}" for s in BackoffStrategy)
            raise TypeError(
                f"{owner}.strategy must be one of {choices}, got {self.strategy!r}"
            )
        check_exceptions(owner, "retryable_exceptions", self.retryable_exceptions)
        check_exceptions(
            owner, "non_retryable_exceptions", self.non_retryable_exceptions
        )
        for field in ("deadline", "attempt_timeout"):
            value = getattr(self, field)
            if value is not None:
                check_seconds(owner, field, value)
                if value == 0:
                    raise ValueError(
                        f"{owner}.{field} must be > 0 (or None for no limit), got 0"
                    )
        for field in ("retry_on_result", "delay_from"):
            value = getattr(self, field)
            if value is not None:
                check_hook(value, f"{owner}.{field}", 1)

    def should_retry(self, error: Exception) -> bool:
        """Whether *error*, raised by an attempt, may be retried."""
        if isinstance(error, self.non_retryable_exceptions):
            return False
        retryable = self.retryable_exceptions
        if isinstance(error, CircuitOpenError):
            named = tuple(t for t in retryable if issubclass(t, CircuitOpenError))
            return isinstance(error, named)
        return not retryable or isinstance(error, retryable)

    def delays(self, random: RandomSource | None = None) -> list[float]:
        """
        Return the delays before each of ``max_retries`` retries of one call.

        Args:
            random: The jitter source; ``None`` uses the process-wide default.
        """
        source = random or _ports.current.random
        result: list[float] = []
        previous = self.base_delay
        for retry in range(1, self.max_retries + 1):
            previous = self.delay(retry, previous=previous, random=source)
            result.append(previous)
        return result

    def delay(self, retry: int, *, previous: float, random: RandomSource) -> float:
        """
        Return the delay before retry number *retry* (from 1), in seconds.

        Args:
            retry: The retry about to happen.
            previous: The delay before the previous retry of the same call;
                ``base_delay`` before the first.
            random: The jitter source.
        """
        return self.strategy.delay(
            retry,
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            previous=previous,
            random=random,
        )

    def as_dict(self) -> dict[str, Any]:
        """
        Return the fields as plain, JSON-serialisable data (the metrics' ``config``).

        The strategy becomes its value (``"full_jitter"``), each exception
        tuple a list of qualified class names (``"builtins.ConnectionError"``,
        ``"myapp.errors.Throttled"``), and a function its qualified name.
        """
        return {field.name: _plain(getattr(self, field.name)) for field in fields(self)}


def _plain(value: object) -> object:
    """Return a config field's value as JSON data: numbers, strings, lists."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, BackoffStrategy):
        return value.value
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    # A class or function by its qualified name; any other object by its class's.
    named = value if hasattr(value, "__qualname__") else type(value)
    return f"{getattr(named, '__module__', '?')}.{getattr(named, '__qualname__', '?')}"


_DEFAULT_CONFIG: Final = RetryConfig()

# Policies are few and busy: they fold their tokens less often than breakers
# (see _tally.FOLD_AT), for a lock taken once per 128 calls and a list of at
# most about 1 KiB.
_FOLD_AT: Final = 128

# The tokens a protected call leaves: it succeeded, one of its attempts is
# retried, it failed (not retryable), or its retries ran out.
_SUCCEEDED: Final = None
_RETRIED: Final = object()
_FAILED: Final = object()
_EXHAUSTED: Final = object()


class RetryMetrics(TypedDict):
    """The snapshot :meth:`RetryPolicy.get_metrics` returns (a plain dict)."""

    name: str
    """The policy's name."""
    total_calls: int
    """
    Protected calls that finished: ``total_successes + total_failures``.

    Each counts once, however many attempts it took; a cancelled call counts
    in neither.
    """
    total_successes: int
    """Calls that returned a wanted result, on any attempt."""
    total_failures: int
    """
    Calls that failed: raised (not retryable, or out of retries), or ended on a result
    that ``retry_on_result`` rejected (which the caller still got).
    """
    total_retries: int
    """Retries made, over all calls."""
    total_exhausted: int
    """
    Calls that failed because their retries ran out.

    Or were ended by the deadline, a server's delay or the retry budget: the
    :class:`RetryExhausted` event's ``reason`` says which.
    """
    config: dict[str, Any]
    """The configuration, as plain data: :meth:`RetryConfig.as_dict`."""
    budget_balance: float | None
    """Retries the policy's budget would allow now; ``None`` without one."""
    budget_refusals: int | None
    """Retries the budget refused (for every policy sharing it); ``None`` without."""


class RetryPolicy:
    """
    Retries failed calls with backoff.

    Use it as a decorator on sync and async functions and methods, or through
    :meth:`call_sync` and :meth:`call_async`. A policy holds no per-call state:
    one policy can serve any number of functions, threads and tasks.

    Args:
        name: Identifies the policy in events, logs and metrics.
        config: What to retry and how long to wait; ``None`` for defaults.
        clock: Times calls that needed retries; ``None`` uses the
            process-wide default at each call.
        sleeper: Waits between attempts; ``None`` uses the process-wide
            default at each call. A zero delay never sleeps.
        random: The jitter source; ``None`` uses the process-wide default.
        sink: Receives every event of this policy, in addition to the
            process-wide sink; ``None`` for none.
        budget: A :class:`RetryBudget`, which may be shared by many policies:
            each protected call deposits, each retry withdraws, and a retry
            it cannot pay is not made. ``None`` for no budget.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: *name* is empty.
    """

    __slots__ = (
        "__weakref__",
        "_budget",
        "_clock",
        "_config",
        "_exhausted",
        "_failures",
        "_hooks",
        "_lock",
        "_name",
        "_pending",
        "_random",
        "_retries",
        "_sink",
        "_sleeper",
        "_successes",
    )

    def __init__(  # noqa: PLR0913 - every port is keyword-only
        self,
        name: str = "retry",
        config: RetryConfig | None = None,
        *,
        clock: Clock | None = None,
        sleeper: Sleeper | None = None,
        random: RandomSource | None = None,
        sink: EventSink | None = None,
        budget: RetryBudget | None = None,
    ) -> None:
        check_name(name)
        if config is None:
            config = _DEFAULT_CONFIG
        elif not isinstance(config, RetryConfig):
            raise TypeError(f"config must be a RetryConfig, got {config!r}")
        self._name = name
        self._config = config
        self._clock = None if clock is None else check_port(clock, Clock, "clock")
        self._sleeper = (
            None if sleeper is None else check_port(sleeper, Sleeper, "sleeper")
        )
        self._random = (
            None if random is None else check_port(random, RandomSource, "random")
        )
        self._sink = None if sink is None else check_port(sink, EventSink, "sink")
        if budget is not None and not isinstance(budget, RetryBudget):
            raise TypeError(
                f"budget must be a RetryBudget (or None), got {budget!r}"
                + (": pass an instance, RetryBudget()" if budget is RetryBudget else "")
            )
        self._budget = budget
        self._hooks: tuple[Hook, ...] = ()
        self._successes = 0
        self._failures = 0
        self._retries = 0
        self._exhausted = 0
        # Outcomes leave a token on the pending list, folded into the counts
        # under this lock (see _tally): a policy decides nothing under a lock.
        self._lock = threading.Lock()
        self._pending: list[object] = []
        with _fork.making.lock:
            _fork.register(self, RetryPolicy._renew_after_fork)
        registry._add_policy(self)

    @property
    def name(self) -> str:
        """The policy's name."""
        return self._name

    @property
    def config(self) -> RetryConfig:
        """The policy's configuration."""
        return self._config

    @property
    def budget(self) -> RetryBudget | None:
        """The policy's retry budget, if it has one."""
        return self._budget

    def __repr__(self) -> str:
        return f"<RetryPolicy {self._name!r} max_retries={self._config.max_retries}>"

    def on_retry(
        self, callback: Callable[[int, Exception, float], object]
    ) -> Callable[[int, Exception, float], object]:
        """
        Call ``callback(attempt, error, delay)`` before each retry.

        *attempt* is the number of the retry about to happen (1 for the
        first), *error* the exception of the failed attempt and *delay* the
        seconds the policy waits first. An async callback is scheduled as a
        task on the running event loop. A callback that raises is logged and
        reported as a :class:`~aiobreakers.HookFailed` event; the protected
        call is never affected. Returns *callback*, so this can be used as a
        decorator.
        """
        check_hook(callback, "on_retry", 3)
        self._hooks = (*self._hooks, callback)
        return callback

    def _renew_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may be held for good)."""
        self._lock = threading.Lock()

    def _count(self, token: object) -> None:
        """Count one outcome: leave its token for the next fold (see _tally)."""
        pending = self._pending
        pending.append(token)
        if len(pending) >= _FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        with self._lock:
            self._fold_pending()

    def _fold_pending(self) -> None:
        """Under the lock: count the outcomes whose tokens are pending."""
        tokens = take(self._pending)
        succeeded = tokens.count(_SUCCEEDED)
        if succeeded == len(tokens):  # the common case: nothing but successes
            self._successes += succeeded
            return
        retries = tokens.count(_RETRIED)
        failures = tokens.count(_FAILED)
        exhausted = tokens.count(_EXHAUSTED)
        self._retries += retries
        self._failures += failures + exhausted
        self._exhausted += exhausted
        self._successes += len(tokens) - retries - failures - exhausted

    def reset(self) -> None:
        """Zero the policy's counters (the configuration and hooks stay)."""
        with self._lock:
            take(self._pending)  # outcomes from before the reset
            self._successes = self._failures = self._retries = self._exhausted = 0

    def get_metrics(self) -> RetryMetrics:
        """
        Return a snapshot of the policy's counters and configuration.

        The snapshot is consistent: its counters are read under the policy's
        lock, at one moment.
        """
        with self._lock:
            self._fold_pending()
            successes, failures = self._successes, self._failures
            retries, exhausted = self._retries, self._exhausted
        budget = None if self._budget is None else self._budget.get_metrics()
        return {
            "name": self._name,
            "total_calls": successes + failures,
            "total_successes": successes,
            "total_failures": failures,
            "total_retries": retries,
            "total_exhausted": exhausted,
            "config": self._config.as_dict(),
            "budget_balance": None if budget is None else budget["balance"],
            "budget_refusals": None if budget is None else budget["refusals"],
        }

    # -- protecting calls ---------------------------------------------------

    # Typed as the identity: retrying changes neither parameters nor result,
    # so the wrapper keeps the function's exact type (sync or async).
    @overload
    def __call__(self, func: _F, /) -> _F: ...

    @overload
    def __call__(self, func: _CM, /) -> _CM: ...

    def __call__(self, func: Any, /) -> Any:
        """
        Decorate *func* so that its failed calls are retried.

        Works on sync and async functions, on methods, and on ``staticmethod``
        and ``classmethod`` objects (whichever decorator is on top); the
        wrapper keeps the function's signature, name and docstring.

        Raises:
            TypeError: *func* is not callable or is a generator function.
        """
        protected: Any = decorate(
            func, "retry policy", self._protect_sync, self._protect_async
        )
        return protected

    def call_sync(
        self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """
        Call ``func(*args, **kwargs)``, retrying it as configured.

        Returns:
            The result of the first attempt that returns.

        Raises:
            Exception: The last attempt's exception, unchanged, when it may not
                be retried or the retries have run out.
        """
        self._check_sync(func)
        result: R = self._guard_sync(func)(*args, **kwargs)
        return result

    async def call_async(
        self,
        func: Callable[P, Awaitable[R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """
        Await ``func(*args, **kwargs)``, retrying it as configured.

        Returns:
            The result of the first attempt that returns.

        Raises:
            Exception: The last attempt's exception, unchanged, when it may not
                be retried or the retries have run out.
        """
        result: R = await self._call_async(func, args, kwargs)
        return result

    def attempts(self) -> Attempts:
        """
        Return the attempts of one run of a block, to retry code that is not a function.

        Example::

            for attempt in retry.attempts():  # or: async for ... in coroutines
                with attempt:
                    do_something()

        A retryable error in the block is swallowed, waited out, and the
        block runs again; the final error propagates from its ``with``. Each
        run of the loop counts as one protected call, with the same hooks,
        events, metrics, deadline and budget as the decorator. A block cannot
        be cut short: *attempt_timeout* does not apply, and the deadline only
        stops waits. ``attempt.number`` is 1 for the first attempt.
        """
        return Attempts(self)

    def _begin_run(self) -> _Call:
        """Start a run of attempts() (its first attempt starts now)."""
        if self._budget is not None:
            self._budget.deposit()
        started = self._now() if self._config.deadline is not None else None
        return _Call(self, started)

    def _count_success(self) -> None:
        self._count(_SUCCEEDED)

    def _sleeper_now(self) -> Sleeper:
        """Return the policy's sleeper, or the process-wide default now."""
        return self._sleeper or _ports.current.sleeper

    # A protector wraps one function. Its first attempt is inline, since that
    # is all a healthy call does; retries run in _retry_sync / _retry_async.
    # Retrying outside the except block keeps later errors free of an
    # implicit __context__ pointing at this one; dropping the local
    # afterwards keeps frame and traceback out of a reference cycle.

    def _protect_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        self._check_sync(func)
        config = self._config
        if (
            self._budget is not None
            or config.deadline is not None
            or config.retry_on_result is not None
        ):
            return self._guard_sync(func)
        policy = self
        pending = self._pending

        def protected(*args: Any, **kwargs: Any) -> Any:
            try:
                result = func(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - retried or re-raised below
                failure = error
            else:
                pending.append(_SUCCEEDED)
                if len(pending) >= _FOLD_AT:
                    policy._fold()
                return result
            try:
                return policy._retry_sync(func, args, kwargs, failure, None)
            finally:
                del failure

        return protected

    def _guard_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Protect *func* with every option: budget, deadline, result predicate."""
        policy = self
        pending = self._pending
        budget = self._budget
        timed = self._config.deadline is not None
        predicate = self._config.retry_on_result
        # The policy's own clock is fixed; the default is read at each call.
        own_clock = None if self._clock is None else self._clock.monotonic
        current = _ports.current

        def protected(*args: Any, **kwargs: Any) -> Any:
            if budget is not None:
                budget.deposit()
            started = None
            if timed:
                started = own_clock() if own_clock is not None else current.monotonic()
            try:
                result = func(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - retried or re-raised below
                failure = error
            else:
                if predicate is None:
                    rejected = False
                else:
                    try:
                        rejected = bool(predicate(result))
                    except Exception:  # noqa: BLE001 - user code: logged, accepted
                        rejected = policy._predicate_failed(result)
                if not rejected:
                    pending.append(_SUCCEEDED)
                    if len(pending) >= _FOLD_AT:
                        policy._fold()
                    return result
                failure = UnwantedResult(result)
            try:
                return policy._retry_sync(func, args, kwargs, failure, started)
            finally:
                del failure

        return protected

    def _protect_async(
        self, func: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        policy = self
        pending = self._pending
        config = self._config
        guarded = self._budget is not None or config.deadline is not None
        guarded = guarded or config.retry_on_result is not None
        guarded = guarded or config.attempt_timeout is not None

        async def protected(*args: Any, **kwargs: Any) -> Any:
            if guarded:
                return await policy._call_async(func, args, kwargs)
            try:
                result = await func(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - retried or re-raised below
                failure = error
            else:
                pending.append(_SUCCEEDED)
                if len(pending) >= _FOLD_AT:
                    policy._fold()
                return result
            try:
                return await policy._retry_async(func, args, kwargs, failure, None)
            finally:
                del failure

        return protected

    def _check_sync(self, func: Callable[..., Any]) -> None:
        if self._config.attempt_timeout is not None:
            raise TypeError(
                f"retry policy {self._name!r} has an attempt_timeout, which cuts"
                " async attempts only: a running sync function cannot be"
                f" interrupted safely; cannot protect {_name_of(func)}"
            )

    # The full async path, for a policy with a budget, a deadline, a result
    # predicate or an attempt timeout: the first attempt too goes through
    # every option, so that the plain protector above stays short.

    async def _call_async(
        self,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if self._budget is not None:
            self._budget.deposit()
        started = self._now() if self._config.deadline is not None else None
        try:
            result = await self._attempt_async(func, args, kwargs, started)
        except Exception as error:  # noqa: BLE001 - retried or re-raised below
            failure = error
        else:
            if not self._rejects(result):
                self._count(_SUCCEEDED)
                return result
            failure = UnwantedResult(result)
        try:
            return await self._retry_async(func, args, kwargs, failure, started)
        finally:
            del failure

    def _retry_sync(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        failure: Exception,
        started: float | None,
    ) -> Any:
        """Retry ``func(*args, **kwargs)`` after its first attempt failed."""
        call = _Call(self, started)
        try:
            while True:
                delay = self._plan(call, failure)
                if delay is None:
                    if isinstance(failure, UnwantedResult):
                        return failure.result
                    raise failure
                if delay > 0:
                    self._sleeper_now().sleep_sync(delay)
                try:
                    result = func(*args, **kwargs)
                except Exception as error:  # noqa: BLE001 - retried or re-raised
                    failure = error
                    continue
                if self._config.retry_on_result is not None and self._rejects(result):
                    failure = UnwantedResult(result)
                    continue
                self._count(_SUCCEEDED)
                return result
        finally:
            del failure  # no frame-traceback cycle (see the protectors)

    async def _retry_async(
        self,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        failure: Exception,
        started: float | None,
    ) -> Any:
        """Retry ``func(*args, **kwargs)`` after its first attempt failed."""
        call = _Call(self, started)
        try:
            while True:
                delay = self._plan(call, failure)
                if delay is None:
                    if isinstance(failure, UnwantedResult):
                        return failure.result
                    raise failure
                if delay > 0:
                    await self._sleeper_now().sleep_async(delay)
                try:
                    result = await self._attempt_async(func, args, kwargs, started)
                except Exception as error:  # noqa: BLE001 - retried or re-raised
                    failure = error
                    continue
                if self._config.retry_on_result is not None and self._rejects(result):
                    failure = UnwantedResult(result)
                    continue
                self._count(_SUCCEEDED)
                return result
        finally:
            del failure  # no frame-traceback cycle (see the protectors)

    async def _attempt_async(
        self,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        started: float | None,
    ) -> Any:
        """Await one attempt, cut at attempt_timeout or at the deadline."""
        config = self._config
        limit = config.attempt_timeout
        if started is not None and config.deadline is not None:
            left = started + config.deadline - self._now()
            limit = left if limit is None else min(limit, left)
        if limit is None:
            return await func(*args, **kwargs)
        sleeper = self._sleeper_now()
        return await within(max(0.0, limit), func(*args, **kwargs), sleeper)

    def _now(self) -> float:
        clock = self._clock
        return clock.monotonic() if clock is not None else _ports.current.monotonic()

    def _rejects(self, result: object) -> bool:
        """
        Apply retry_on_result; a predicate that raises accepts the result.

        The predicate is user code: if it raises, the caller gets the result
        (as without a predicate) and the predicate's error is logged.
        """
        predicate = self._config.retry_on_result
        if predicate is None:
            return False
        try:
            return bool(predicate(result))
        except Exception:  # noqa: BLE001 - a broken predicate must not break the call
            return self._predicate_failed(result)

    def _predicate_failed(self, result: object) -> bool:
        """Log that retry_on_result raised on *result* (the current exception)."""
        logger.exception(
            "retry_on_result of retry policy %r raised on %r; accepting it",
            self._name,
            result,
        )
        return False

    def _should_retry(self, error: Exception) -> bool:
        """
        Apply the exception filters; a filter that raises means "do not retry".

        A class in the filters may run code when checked (a metaclass
        ``__instancecheck__``); if it raises, the attempt's own error reaches
        the caller, counted as a failure, and the filter's error is logged.
        """
        if isinstance(error, UnwantedResult):
            return True  # retry_on_result asked for it
        try:
            return self._config.should_retry(error)
        except Exception:  # noqa: BLE001 - a broken filter must not break the call
            logger.exception(
                "the exception filters of retry policy %r raised while checking"
                " %r; not retrying it",
                self._name,
                error,
            )
            return False

    def _server_delay(self, error: Exception) -> float | None:
        """
        Return the delay ``delay_from`` asks for, or None for the strategy's.

        ``delay_from`` is user code: if it raises, or answers something that
        is not a number of seconds, it is logged and ignored.
        """
        asked: float | None = None
        delay_from = self._config.delay_from
        if delay_from is not None and not isinstance(error, UnwantedResult):
            try:
                answer: object = delay_from(error)
                if isinstance(answer, (int, float)) and not isinstance(answer, bool):
                    asked = float(answer)
                if answer is not None and not (
                    asked is not None and is_finite(asked) and asked >= 0
                ):
                    logger.error(
                        "delay_from of retry policy %r returned %r for %r, not"
                        " seconds >= 0; using the strategy's delay",
                        self._name,
                        answer,
                        error,
                    )
                    asked = None
            except Exception:  # noqa: BLE001 - user code must not break the call
                logger.exception(
                    "delay_from of retry policy %r raised on %r; using the"
                    " strategy's delay",
                    self._name,
                    error,
                )
        return asked

    def _wait_asked(self, failure: Exception, delay: float) -> float:
        """
        Return the wait before retrying *failure*, given the strategy's *delay*.

        What ``delay_from`` asks replaces the strategy's delay; an open
        circuit is waited out until a probe may pass, whichever is longer.
        """
        asked = self._server_delay(failure)
        if asked is not None:
            delay = asked
        if isinstance(failure, CircuitOpenError):
            delay = max(delay, failure.retry_after)
        return delay

    def _plan(self, call: _Call, failure: Exception) -> float | None:
        """Decide on a failed attempt: the delay before the next, or ``None``."""
        config = self._config
        if call.retry == 1:
            call.failed_at = self._now()
        if not self._should_retry(failure):
            self._count(_FAILED)
            return None
        retry = call.retry
        if retry > config.max_retries:
            self._give_up(call, failure, "max_retries")
            return None
        # Every strategy gives 0 when max_delay is 0: skip the arithmetic.
        delay = (
            config.delay(
                retry,
                previous=call.previous,
                random=self._random or _ports.current.random,
            )
            if config.max_delay
            else 0.0
        )
        delay = self._wait_asked(failure, delay)
        # Strategy delays never exceed max_delay; the dependency's may.
        if delay > config.max_delay:
            # Retrying sooner would disobey the server; later, the caller.
            self._give_up(call, failure, "server_delay")
            return None
        if call.deadline is not None and self._now() + delay > call.deadline:
            self._give_up(call, failure, "deadline")
            return None
        if self._budget is not None and not self._budget.withdraw():
            self._give_up(call, failure, "budget")
            return None
        self._count(_RETRIED)
        if listening(self._sink):
            emit(
                self._sink,
                RetryScheduled(
                    name=self._name, attempt=retry, error=failure, delay=delay
                ),
            )
        if self._hooks:
            run_hooks(
                self._hooks,
                (retry, failure, delay),
                owner=self._name,
                hook="on_retry",
                sink=self._sink,
            )
        call.retry = retry + 1
        call.previous = delay
        return delay

    def _give_up(self, call: _Call, failure: Exception, reason: str) -> None:
        """Count a call whose retries end for *reason*, and say so."""
        self._count(_EXHAUSTED)
        if listening(self._sink):
            emit(
                self._sink,
                RetryExhausted(
                    name=self._name,
                    attempts=call.retry,
                    error=failure,
                    elapsed=span(call.failed_at, self._now()) or 0.0,
                    reason=reason,
                ),
            )


class _Call:
    """One protected call's retries so far: what the next decision needs."""

    __slots__ = ("deadline", "failed_at", "previous", "retry")

    def __init__(self, policy: RetryPolicy, started: float | None) -> None:
        config = policy.config
        # The retry about to be decided, and the delay before the last one.
        self.retry = 1
        self.previous = config.base_delay
        self.failed_at = 0.0  # set when the first attempt fails
        self.deadline = (
            None
            if started is None or config.deadline is None
            else started + config.deadline
        )


def _name_of(func: object) -> str:
    return str(getattr(func, "__qualname__", func))
