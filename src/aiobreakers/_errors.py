"""Exceptions raised by aiobreakers."""

from __future__ import annotations

__all__ = ["CircuitOpenError"]


class CircuitOpenError(Exception):
    """
    A circuit breaker rejected a call without running it.

    Raised when the circuit is open, or half-open with every probe slot busy,
    and the breaker has no fallback (context managers always raise it).

    Attributes:
        name: The name of the breaker that rejected the call.
        retry_after: Seconds until the breaker lets a probe call through.
            ``0.0`` when it already would, but its probe slots are busy.
        state: The breaker's state when it rejected the call, as a string
            (``"open"`` or ``"half_open"``).
    """

    def __init__(self, name: str, retry_after: float, state: str = "open") -> None:
        self.name = name
        self.retry_after = retry_after
        self.state = state
        if state == "open":
            why = f"circuit {name!r} is open"
        else:
            why = f"circuit {name!r} is half-open and all its probe slots are busy"
        super().__init__(f"{why}; retry after {retry_after:.3f}s")

    def __reduce__(self) -> tuple[type[CircuitOpenError], tuple[str, float, str]]:
        # Keeps the error picklable (multiprocessing, task queues) despite the
        # custom __init__ signature.
        return (type(self), (self.name, self.retry_after, self.state))
