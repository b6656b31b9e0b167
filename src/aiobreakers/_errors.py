"""Exceptions raised by aiobreakers."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["CircuitOpenError", "UnwantedResult"]


class CircuitOpenError(Exception):
    """
    A circuit breaker rejected a call without running it.

    Raised when the circuit is open, or half-open with every probe slot busy,
    and the breaker has no fallback (context managers always raise it).

    Args:
        name: The name of the breaker that rejected the call.
        retry_after: Seconds until the breaker lets a probe call through.
        state: The breaker's state, ``"open"`` or ``"half_open"``.
    """

    # The data lives in ``args`` and the message is made only when asked for:
    # rejecting must be cheap, it is what an open breaker does all day.
    if TYPE_CHECKING:

        def __init__(
            self, name: str, retry_after: float, state: str = "open"
        ) -> None: ...

    @property
    def name(self) -> str:
        """The name of the breaker that rejected the call."""
        name: str = self.args[0]
        return name

    @property
    def retry_after(self) -> float:
        """
        Seconds until the breaker lets a probe call through.

        ``0.0`` when it already would, but all its probe slots are busy.
        """
        retry_after: float = self.args[1]
        return retry_after

    @property
    def state(self) -> str:
        """The breaker's state when it rejected: ``"open"`` or ``"half_open"``."""
        return str(self.args[2]) if len(self.args) > 2 else "open"

    def __str__(self) -> str:
        if self.state == "open":
            why = f"circuit {self.name!r} is open"
        else:
            why = f"circuit {self.name!r} is half-open and all its probe slots are busy"
        return f"{why}; retry after {self.retry_after:.3f}s"


class UnwantedResult(Exception):  # noqa: N818 - it stands for a result, not an error
    """
    A result that a predicate rejected, where an exception is expected.

    When ``RetryConfig.retry_on_result`` (or ``BreakerConfig.failure_on_result``)
    says a call's *result* is a failure, hooks and events that report the
    failure's exception get one of these, so that they always receive an
    :class:`Exception` and can tell the two apart with ``isinstance``. It is
    never raised to the caller: a policy whose retries run out returns the
    last result.

    Args:
        result: The result the predicate rejected.
    """

    @property
    def result(self) -> object:
        """The result the predicate rejected."""
        return self.args[0]

    def __str__(self) -> str:
        return f"unwanted result {self.result!r}"
