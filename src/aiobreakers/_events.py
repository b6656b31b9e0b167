"""
Typed event records, and their delivery to sinks.

Every observable thing a breaker or retry policy does is one frozen event
record. Hooks (:mod:`._hooks`), the testing spies and user sinks all consume
that one stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias

from . import _ports

if TYPE_CHECKING:
    from ._machine import CircuitState
    from ._ports import EventSink

__all__ = [
    "CallFailed",
    "CallRejected",
    "CallSucceeded",
    "Event",
    "HookFailed",
    "RetryExhausted",
    "RetryScheduled",
    "StateChanged",
    "StoreDegraded",
    "StoreRecovered",
]

logger: Final = logging.getLogger("aiobreakers")


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChanged:
    """
    A circuit breaker moved from one state to another.

    Attributes:
        name: The breaker's name.
        old: The state it left.
        new: The state it entered.
        reason: Why, one of ``"failure_threshold"`` (too many failures while
            closed), ``"probe_failed"`` (a half-open probe failed),
            ``"recovery_timeout"`` (open long enough to probe),
            ``"probes_succeeded"`` (enough half-open probes succeeded),
            ``"trip"`` and ``"reset"`` (forced by :meth:`~CircuitBreaker.trip`
            and :meth:`~CircuitBreaker.reset`), ``"forced"`` (by
            :meth:`aiobreakers.testing.BreakerRegistry.force`), and, with a
            :class:`~aiobreakers.RateWindow`, ``"failure_rate"`` or
            ``"slow_call_rate"`` (that rate reached its threshold), and
            ``"fleet"`` (another process sharing the circuit through a
            :class:`~aiobreakers.redis.RedisStore` changed it).
        at: When the state changed, on the breaker's clock (seconds): an open
            spell lasts from its ``at`` to the next change's.
        window_calls: With a rate reason: the calls in the window.
        failure_rate: With a rate reason: the window's failure rate.
        slow_call_rate: With a rate reason: the window's slow-call rate.
    """

    name: str
    old: CircuitState
    new: CircuitState
    reason: str
    at: float
    window_calls: int | None = None
    failure_rate: float | None = None
    slow_call_rate: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSucceeded:
    """
    A protected call finished and counts as a success.

    Attributes:
        name: The breaker's name.
        duration: How long the call took, in seconds of the breaker's clock.
        error: ``None`` when the call returned; else the exception it raised,
            which the breaker's exception filters do not count as a failure
            (the exception still reached the caller).
    """

    name: str
    duration: float
    error: Exception | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFailed:
    """
    A protected call raised an exception that counts as a failure.

    Attributes:
        name: The breaker's name.
        duration: How long the call took, in seconds of the breaker's clock.
        error: The exception, which reached the caller unchanged.
    """

    name: str
    duration: float
    error: Exception


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRejected:
    """
    A breaker rejected a call without running it.

    Attributes:
        name: The breaker's name.
        state: The breaker's state at the time (open or half-open).
        retry_after: Seconds until a probe call may pass.
        fallback: Whether the breaker served the call with its fallback.
    """

    name: str
    state: CircuitState
    retry_after: float
    fallback: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryScheduled:
    """
    A retry policy will retry a failed attempt after a delay.

    Attributes:
        name: The policy's name.
        attempt: The number of the retry about to happen (1 for the first).
        error: The exception of the attempt that failed (an
            :class:`~aiobreakers.UnwantedResult` for a result that
            ``retry_on_result`` rejected).
        delay: Seconds the policy waits before the retry.
    """

    name: str
    attempt: int
    error: Exception
    delay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryExhausted:
    """
    A retry policy gave up: the last allowed attempt failed.

    Attributes:
        name: The policy's name.
        attempts: How many attempts were made in all.
        error: The last attempt's exception, which reached the caller
            unchanged (an :class:`~aiobreakers.UnwantedResult` when it was a
            result that ``retry_on_result`` rejected: the caller got the
            result).
        elapsed: Seconds of the policy's clock from the first failed attempt
            to giving up: what the retries cost the caller.
        reason: Why the retries ended: ``"max_retries"`` (all made),
            ``"deadline"`` (the next wait would end past it),
            ``"server_delay"`` (the dependency, or an open circuit's
            ``retry_after``, asked for more than
            ``max_delay``) or ``"budget"`` (the retry budget is spent).
    """

    name: str
    attempts: int
    error: Exception
    elapsed: float
    reason: str = "max_retries"


@dataclass(frozen=True, slots=True, kw_only=True)
class HookFailed:
    """
    A hook callback raised; the protected call went on unaffected.

    Attributes:
        name: The name of the breaker or policy the hook belongs to.
        hook: The hook's name, such as ``"on_open"`` or ``"on_retry"``.
        error: The exception the callback raised.
    """

    name: str
    hook: str
    error: Exception


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreDegraded:
    """
    A shared store (:class:`aiobreakers.redis.RedisStore`) stopped answering.

    Or it answers but refuses writes (out of memory, read-only). From now on
    its breakers decide alone, on their own process's state, at local speed,
    until :class:`StoreRecovered`. Emitted once per outage.

    Attributes:
        name: The store's namespace.
        error: What failed, as text (the exception's type and message).
    """

    name: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreRecovered:
    """
    A shared store answers again; its breakers share the fleet's circuit again.

    Attributes:
        name: The store's namespace.
        outage: Seconds since the matching :class:`StoreDegraded`.
    """

    name: str
    outage: float


Event: TypeAlias = (
    StateChanged
    | CallSucceeded
    | CallFailed
    | CallRejected
    | RetryScheduled
    | RetryExhausted
    | HookFailed
    | StoreDegraded
    | StoreRecovered
)
"""Any event a breaker, retry policy or shared store emits."""


def emit(own: EventSink | None, event: Event) -> None:
    """Deliver *event* to a breaker's own sink and to the process-wide sink."""
    for sink in (own, _ports.current.sink):
        if sink is not None:
            _deliver(sink, event)


def _deliver(sink: EventSink, event: Event) -> None:
    try:
        sink.emit(event)
    except Exception:
        # Reported, never raised: a sink must not break the call.
        logger.exception("event sink %r failed on %r", sink, event)


def listening(own: EventSink | None) -> bool:
    """Whether anyone would receive an event (so that it is worth building)."""
    return own is not None or _ports.current.sink is not None
