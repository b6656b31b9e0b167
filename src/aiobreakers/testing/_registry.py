"""Finding breakers by name, and forcing their state, in tests."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from aiobreakers import CircuitBreaker, CircuitState, registry

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["BreakerRegistry", "track_breakers"]


def track_breakers() -> None:
    """
    Do nothing: every breaker is known from the moment it is made.

    :data:`aiobreakers.registry` is always on, so there is nothing to start
    and no order to get right. Kept so that code calling it still runs.

    .. deprecated:: 0.1
       Remove the call. It warns with :class:`DeprecationWarning`.
    """
    warnings.warn(
        "track_breakers() is no longer needed: every breaker is known from the"
        " moment it is made (aiobreakers.registry); remove the call",
        DeprecationWarning,
        stacklevel=2,
    )


class BreakerRegistry:
    """
    The circuit breakers alive in the process, by name, for tests.

    A view of :data:`aiobreakers.registry`, which knows every breaker from the
    moment it is made, including those made at import time by the code under
    test. Breakers are held weakly: a breaker nobody else keeps disappears
    from here too.

    The ``breakers`` fixture returns one. Example::

        def test_serves_cache_while_down(breakers, client):
            breakers.force("payments", "open")
            assert client.charge(10) == "queued"
    """

    def __iter__(self) -> Iterator[CircuitBreaker[..., Any]]:
        """Iterate over the live breakers, oldest first."""
        return iter(registry.breakers())

    def __len__(self) -> int:
        return len(registry.breakers())

    def named(self, name: str) -> list[CircuitBreaker[..., Any]]:
        """Return every live breaker called *name* (names need not be unique)."""
        return registry.breakers(name)

    def __getitem__(self, name: str) -> CircuitBreaker[..., Any]:
        """
        Return the one live breaker called *name*.

        Raises:
            LookupError: There is none, or more than one; the message lists
                the names there are.
        """
        return registry.find(name)

    def force(self, name: str, state: str | CircuitState) -> CircuitBreaker[..., Any]:
        """
        Put breaker *name* in *state* now, and return it.

        ``"open"`` trips it (a fresh recovery timeout), ``"closed"`` resets
        it (counters zeroed), ``"half_open"`` lets probes through at once.
        Hooks and sinks hear of it as of any change (reason ``"forced"``).

        Raises:
            LookupError: No single live breaker has that name.
            ValueError: *state* is not a state.
        """
        try:
            target = CircuitState(state)
        except ValueError:
            states = [member.value for member in CircuitState]
            raise ValueError(f"state must be one of {states}, got {state!r}") from None
        breaker = self[name]
        breaker._force(target)  # noqa: SLF001 - the toolkit is part of the library
        return breaker

    def reset_all(self) -> None:
        """Reset every live breaker: closed, counters zeroed."""
        for breaker in self:
            breaker.reset()
