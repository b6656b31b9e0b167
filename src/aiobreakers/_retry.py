"""Retry policies: configuration and the retry loop."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypedDict, TypeVar, overload

from . import _fork, _ports
from ._backoff import BackoffStrategy
from ._errors import CircuitOpenError
from ._events import RetryExhausted, RetryScheduled, emit, listening, logger
from ._hooks import Hook, check_hook, run_hooks
from ._ports import Clock, EventSink, RandomSource, Sleeper, check_port
from ._protect import decorate
from ._tally import FOLD_AT, take
from ._validation import (
    check_exceptions,
    check_int,
    check_name,
    check_seconds,
    span,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

__all__ = ["RetryConfig", "RetryMetrics", "RetryPolicy"]

P = ParamSpec("P")
R = TypeVar("R")
_F = TypeVar("_F", bound="Callable[..., Any]")
_CM = TypeVar("_CM", bound="classmethod[Any, Any, Any]")

RetryHook = TypeVar("RetryHook", bound="Callable[[int, Exception, float], object]")


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

    :class:`CircuitOpenError` is never retried unless it, or a subclass, is
    named in *retryable_exceptions* itself (``(Exception,)`` does not count):
    retrying a circuit that is known to be open wastes attempts.
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
        """Return the fields as a plain dict (the ``config`` of the metrics)."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


_DEFAULT_CONFIG: Final = RetryConfig()

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
    """Calls that returned, on any attempt."""
    total_failures: int
    """Calls that raised: not retryable, or out of retries."""
    total_retries: int
    """Retries made, over all calls."""
    total_exhausted: int
    """Calls that failed because their retries ran out."""
    config: dict[str, Any]
    """The configuration, as a plain dict."""


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

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: *name* is empty.
    """

    __slots__ = (
        "__weakref__",
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

    @property
    def name(self) -> str:
        """The policy's name."""
        return self._name

    @property
    def config(self) -> RetryConfig:
        """The policy's configuration."""
        return self._config

    def __repr__(self) -> str:
        return f"<RetryPolicy {self._name!r} max_retries={self._config.max_retries}>"

    def on_retry(self, callback: RetryHook) -> RetryHook:
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
        if len(pending) >= FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        with self._lock:
            self._fold_pending()

    def _fold_pending(self) -> None:
        """Under the lock: count the outcomes whose tokens are pending."""
        tokens = take(self._pending)
        if not tokens:
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
        return {
            "name": self._name,
            "total_calls": successes + failures,
            "total_successes": successes,
            "total_failures": failures,
            "total_retries": retries,
            "total_exhausted": exhausted,
            "config": self._config.as_dict(),
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
        result: R = self._protect_sync(func)(*args, **kwargs)
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
        result: R = await self._protect_async(func)(*args, **kwargs)
        return result

    # A protector wraps one function. Its first attempt is inline, since that
    # is all a healthy call does; retries run in _retry_sync / _retry_async.
    # Retrying outside the except block keeps later errors free of an
    # implicit __context__ pointing at this one; dropping the local
    # afterwards keeps frame and traceback out of a reference cycle.

    def _protect_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        policy = self
        pending = self._pending

        def protected(*args: Any, **kwargs: Any) -> Any:
            try:
                result = func(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - retried or re-raised below
                failure = error
            else:
                pending.append(_SUCCEEDED)
                if len(pending) >= FOLD_AT:
                    policy._fold()
                return result
            try:
                return policy._retry_sync(func, args, kwargs, failure)
            finally:
                del failure

        return protected

    def _protect_async(
        self, func: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        policy = self
        pending = self._pending

        async def protected(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await func(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - retried or re-raised below
                failure = error
            else:
                pending.append(_SUCCEEDED)
                if len(pending) >= FOLD_AT:
                    policy._fold()
                return result
            try:
                return await policy._retry_async(func, args, kwargs, failure)
            finally:
                del failure

        return protected

    def _retry_sync(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        error: Exception,
    ) -> Any:
        """Retry ``func(*args, **kwargs)`` after its first attempt raised *error*."""
        first_failure = self._now()
        retry = 1
        previous = self._config.base_delay
        try:
            while True:
                delay = self._plan(retry, error, previous, first_failure)
                if delay is None:
                    raise error
                if delay > 0:
                    (self._sleeper or _ports.current.sleeper).sleep_sync(delay)
                try:
                    result = func(*args, **kwargs)
                except Exception as next_error:  # noqa: BLE001 - retried or re-raised
                    error = next_error
                else:
                    self._count(_SUCCEEDED)
                    return result
                retry += 1
                previous = delay
        finally:
            del error  # no frame-traceback cycle (see the protectors)

    async def _retry_async(
        self,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        error: Exception,
    ) -> Any:
        """Retry ``func(*args, **kwargs)`` after its first attempt raised *error*."""
        first_failure = self._now()
        retry = 1
        previous = self._config.base_delay
        try:
            while True:
                delay = self._plan(retry, error, previous, first_failure)
                if delay is None:
                    raise error
                if delay > 0:
                    await (self._sleeper or _ports.current.sleeper).sleep_async(delay)
                try:
                    result = await func(*args, **kwargs)
                except Exception as next_error:  # noqa: BLE001 - retried or re-raised
                    error = next_error
                else:
                    self._count(_SUCCEEDED)
                    return result
                retry += 1
                previous = delay
        finally:
            del error  # no frame-traceback cycle (see the protectors)

    def _now(self) -> float:
        return (self._clock or _ports.current.clock).monotonic()

    def _should_retry(self, error: Exception) -> bool:
        """
        Apply the exception filters; a filter that raises means "do not retry".

        A class in the filters may run code when checked (a metaclass
        ``__instancecheck__``); if it raises, the attempt's own error reaches
        the caller, counted as a failure, and the filter's error is logged.
        """
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

    def _plan(
        self,
        retry: int,
        error: Exception,
        previous: float,
        first_failure: float,
    ) -> float | None:
        """Decide on a failed attempt: the delay before *retry*, or ``None``."""
        config = self._config
        if not self._should_retry(error):
            self._count(_FAILED)
            return None
        if retry > config.max_retries:
            self._count(_EXHAUSTED)
            if listening(self._sink):
                emit(
                    self._sink,
                    RetryExhausted(
                        name=self._name,
                        attempts=retry,
                        error=error,
                        elapsed=span(first_failure, self._now()) or 0.0,
                    ),
                )
            return None
        # Every strategy gives 0 when max_delay is 0: skip the arithmetic.
        delay = (
            config.delay(
                retry, previous=previous, random=self._random or _ports.current.random
            )
            if config.max_delay
            else 0.0
        )
        self._count(_RETRIED)
        if listening(self._sink):
            emit(
                self._sink,
                RetryScheduled(
                    name=self._name, attempt=retry, error=error, delay=delay
                ),
            )
        if self._hooks:
            run_hooks(
                self._hooks,
                (retry, error, delay),
                owner=self._name,
                hook="on_retry",
                sink=self._sink,
            )
        return delay
