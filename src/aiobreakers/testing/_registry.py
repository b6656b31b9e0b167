"""Finding breakers by name, and forcing their state, in tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiobreakers import CircuitBreaker, CircuitState
from aiobreakers._registry import registry

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["BreakerRegistry", "track_breakers"]


def track_breakers() -> None:
    """
    Start remembering (weakly) every breaker made from now on.

    :class:`BreakerRegistry` knows the breakers made after the first call.
    The pytest plugin calls it as it loads.
    """
    registry.track()


class BreakerRegistry:
    """
    The circuit breakers alive in the process, by name.

    It knows every breaker made after :func:`track_breakers` was called; the
    pytest plugin calls it as soon as pytest loads it, so that breakers made
    at import time by the code under test are known. Breakers are held
    weakly: a breaker nobody else keeps disappears from here too.

    The ``breakers`` fixture returns one. Example::

        def test_serves_cache_while_down(breakers, client):
            breakers.force("payments", "open")
            assert client.charge(10) == "queued"
    """

    def __iter__(self) -> Iterator[CircuitBreaker[..., Any]]:
        """Iterate over the live breakers."""
        return iter(registry.breakers())

    def __len__(self) -> int:
        return len(registry.breakers())

    def named(self, name: str) -> list[CircuitBreaker[..., Any]]:
        """Return every live breaker called *name* (names need not be unique)."""
        return [breaker for breaker in self if breaker.name == name]

    def __getitem__(self, name: str) -> CircuitBreaker[..., Any]:
        """
        Return the one live breaker called *name*.

        Raises:
            LookupError: There is none, or more than one; the message lists
                the names there are.
        """
        found = self.named(name)
        if len(found) == 1:
            return found[0]
        known = sorted({breaker.name for breaker in self})
        if not found:
            raise LookupError(
                f"no live circuit breaker is called {name!r}; there are {known}"
                " (breakers made before tracking started are not known)"
            )
        raise LookupError(
            f"{len(found)} live circuit breakers are called {name!r}: use named()"
        )

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
