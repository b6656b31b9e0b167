"""An event sink that writes events to :mod:`logging`."""

from __future__ import annotations

import logging

from ._events import (
    CallFailed,
    CallRejected,
    CallSucceeded,
    Event,
    HookFailed,
    RetryExhausted,
    RetryScheduled,
    StateChanged,
    StoreDegraded,
    StoreRecovered,
)
from ._machine import CircuitState

__all__ = ["LoggingSink"]


class LoggingSink:
    """
    An :class:`~aiobreakers.EventSink` that logs events.

    What it logs, and at which level:

    - a circuit opening at ``WARNING``, going half-open or closing at ``INFO``;
    - a retry about to happen at ``INFO``, a policy giving up at ``WARNING``;
    - a rejected call at ``DEBUG``;
    - a shared store degrading at ``WARNING``, recovering at ``INFO``;
    - with *calls*, every finished call at ``DEBUG``.

    Failing hooks are logged already, on the ``"aiobreakers"`` logger.

    Args:
        logger: The logger, or its name.
        calls: Also log each finished call (a line per call: mind the volume).

    Example::

        set_defaults(sink=LoggingSink())  # every breaker and policy
    """

    def __init__(
        self,
        logger: logging.Logger | str = "aiobreakers.events",
        *,
        calls: bool = False,
    ) -> None:
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        elif not isinstance(logger, logging.Logger):
            raise TypeError(f"logger must be a Logger or a name, got {logger!r}")
        self.logger = logger
        self.calls = calls

    def __repr__(self) -> str:
        return f"LoggingSink({self.logger.name!r}, calls={self.calls!r})"

    def emit(self, event: Event) -> None:
        """Log *event* as described above."""
        log = self.logger.log
        if isinstance(event, StateChanged):
            level = logging.WARNING if event.new is CircuitState.OPEN else logging.INFO
            log(
                level,
                "circuit %r: %s -> %s (%s)",
                event.name,
                event.old,
                event.new,
                event.reason,
            )
        elif isinstance(event, RetryScheduled):
            log(
                logging.INFO,
                "%r: retry %d in %.3fs after %r",
                event.name,
                event.attempt,
                event.delay,
                event.error,
            )
        elif isinstance(event, RetryExhausted):
            log(
                logging.WARNING,
                "%r: gave up after %d attempts: %r",
                event.name,
                event.attempts,
                event.error,
            )
        elif isinstance(event, CallRejected):
            log(
                logging.DEBUG,
                "circuit %r: rejected a call (%s, retry after %.3fs)",
                event.name,
                event.state,
                event.retry_after,
            )
        elif isinstance(event, StoreDegraded):
            log(
                logging.WARNING,
                "store %r degraded, its breakers decide alone: %s",
                event.name,
                event.error,
            )
        elif isinstance(event, StoreRecovered):
            log(
                logging.INFO,
                "store %r recovered after %.3fs",
                event.name,
                event.outage,
            )
        elif self.calls and isinstance(event, (CallSucceeded, CallFailed)):
            outcome = "failed" if isinstance(event, CallFailed) else "succeeded"
            log(
                logging.DEBUG,
                "circuit %r: call %s in %.3fs",
                event.name,
                outcome,
                event.duration,
            )
        elif not isinstance(event, (CallSucceeded, CallFailed, HookFailed)):
            raise TypeError(f"LoggingSink does not know {event!r}")
