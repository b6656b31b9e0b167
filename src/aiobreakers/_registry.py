"""
The registry: every live breaker and retry policy of the process, held weakly.

Breakers and policies add themselves when they are made; nothing else ever
touches the registry on their behalf, so a protected call costs it nothing.
Readers (a health endpoint, a metrics collector, the testing toolkit) ask it
for the live objects and read their metrics themselves.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypedDict, TypeVar

from . import _fork

if TYPE_CHECKING:
    from ._breaker import BreakerMetrics, CircuitBreaker
    from ._retry import RetryMetrics, RetryPolicy

__all__ = ["Registry", "RegistrySnapshot", "registry"]

_T = TypeVar("_T")

# A member list is swept of dead references when it has grown to twice what
# was alive at the last sweep (and at least this long): O(1) per member made.
_FIRST_SWEEP: Final = 64

# Error messages list at most this many names.
_NAMES_SHOWN: Final = 20

# How errors name each kind of member: one, several, the method listing them.
_Kinds = tuple[str, str, str]
_BREAKERS: Final[_Kinds] = ("circuit breaker", "circuit breakers", "breakers")
_POLICIES: Final[_Kinds] = ("retry policy", "retry policies", "policies")


class RegistrySnapshot(TypedDict):
    """What :meth:`Registry.snapshot` returns: plain, JSON-serialisable data."""

    breakers: list[BreakerMetrics]
    """Every live breaker's :meth:`~CircuitBreaker.get_metrics`, by name."""
    policies: list[RetryMetrics]
    """Every live retry policy's :meth:`~RetryPolicy.get_metrics`, by name."""


class _Members(Generic[_T]):
    """
    Weak references to objects, in the order they were added.

    Plain references without callbacks, in a list: the cheapest way to hold
    an object weakly (a ``WeakSet`` costs a callback per member and a hash
    table slot more), and no code of ours runs when a member dies. Dead
    references are swept when the list has doubled, and by every read.
    Callers hold the registry's lock.
    """

    __slots__ = ("_refs", "_sweep_at")

    def __init__(self) -> None:
        self._refs: list[weakref.ref[_T]] = []
        self._sweep_at = _FIRST_SWEEP

    def add(self, member: _T) -> None:
        refs = self._refs
        refs.append(weakref.ref(member))
        if len(refs) >= self._sweep_at:
            self.live()

    def live(self) -> list[_T]:
        """Return the live members, oldest first, and forget the dead."""
        refs = self._refs
        alive: list[_T] = []
        kept: list[weakref.ref[_T]] = []
        for ref in refs:
            member = ref()
            if member is not None:
                alive.append(member)
                kept.append(ref)
        # A collection run by an allocation above may have run a finalizer
        # that made a member (the lock is reentrant for that): it was appended
        # to the list iterated above, or a nested sweep replaced the list.
        if self._refs is refs:
            self._refs = kept
        self._sweep_at = max(_FIRST_SWEEP, 2 * len(kept))
        return alive


class Registry:
    """
    Every live :class:`CircuitBreaker` and :class:`RetryPolicy` in the process.

    The one instance is :data:`aiobreakers.registry`. It is always on: each
    breaker and policy adds itself when it is made (one weak reference, about
    90 bytes) and nothing happens per call. Objects are held weakly, so a
    breaker that nothing else keeps disappears from here too. Every method is
    thread-safe, and a forked child gets a fresh lock.

    Names need not be unique. :meth:`find` insists on exactly one breaker of
    the name; :meth:`breakers` with a name lists them all. Exporters
    (:mod:`aiobreakers.prometheus`, :mod:`aiobreakers.opentelemetry`) add up
    the counters of breakers that share a name into one series: several
    breakers of one name are one dependency seen from several places.
    """

    __slots__ = ("__weakref__", "_breakers", "_lock", "_policies")

    def __init__(self) -> None:
        # Reentrant: the garbage collector may run a finalizer that makes a
        # breaker while this thread holds the lock (see _Members.live).
        self._lock = threading.RLock()
        self._breakers: _Members[CircuitBreaker[..., Any]] = _Members()
        self._policies: _Members[RetryPolicy] = _Members()
        with _fork.making.lock:
            _fork.register(self, Registry._renew_after_fork)

    def _renew_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may be held for good)."""
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        breakers, policies = len(self.breakers()), len(self.policies())
        return (
            f"<aiobreakers.registry: {breakers} breaker{'s' * (breakers != 1)},"
            f" {policies} retry polic{'y' if policies == 1 else 'ies'}>"
        )

    def _add_breaker(self, breaker: CircuitBreaker[..., Any]) -> None:
        """Remember *breaker* (called by the breaker as it is made)."""
        with self._lock:
            self._breakers.add(breaker)

    def _add_policy(self, policy: RetryPolicy) -> None:
        """Remember *policy* (called by the policy as it is made)."""
        with self._lock:
            self._policies.add(policy)

    def breakers(self, name: str | None = None) -> list[CircuitBreaker[..., Any]]:
        """
        Return the live circuit breakers, oldest first.

        Args:
            name: Only those with this name; ``None`` for all.
        """
        with self._lock:
            found = self._breakers.live()
        if name is None:
            return found
        return [breaker for breaker in found if breaker.name == name]

    def policies(self, name: str | None = None) -> list[RetryPolicy]:
        """
        Return the live retry policies, oldest first.

        Args:
            name: Only those with this name; ``None`` for all.
        """
        with self._lock:
            found = self._policies.live()
        if name is None:
            return found
        return [policy for policy in found if policy.name == name]

    def find(self, name: str) -> CircuitBreaker[..., Any]:
        """
        Return the one live circuit breaker called *name*.

        Raises:
            LookupError: There is none, or more than one (then use
                :meth:`breakers` with the name). The message lists the names
                there are.
        """
        found = self.breakers()
        matching = [breaker for breaker in found if breaker.name == name]
        return _one(name, matching, found, _BREAKERS)

    def find_policy(self, name: str) -> RetryPolicy:
        """
        Return the one live retry policy called *name*.

        Raises:
            LookupError: There is none, or more than one (then use
                :meth:`policies` with the name). The message lists the names
                there are.
        """
        found = self.policies()
        matching = [policy for policy in found if policy.name == name]
        return _one(name, matching, found, _POLICIES)

    def snapshot(self) -> RegistrySnapshot:
        """
        Return every live breaker's and policy's metrics, sorted by name.

        Plain data that :func:`json.dumps` takes as it is: what a health
        endpoint returns. Each object's metrics are consistent (read under its
        own lock); the objects are read one after the other. Like any state
        read, it moves an open circuit whose recovery timeout has passed to
        half-open.
        """
        # Read outside the registry's lock: get_metrics() may run hooks.
        breakers = [breaker.get_metrics() for breaker in self.breakers()]
        policies = [policy.get_metrics() for policy in self.policies()]
        # sort() is stable: breakers sharing a name stay oldest first.
        breakers.sort(key=lambda metrics: metrics["name"])
        policies.sort(key=lambda metrics: metrics["name"])
        return {"breakers": breakers, "policies": policies}


class _Named(Protocol):
    """What :func:`_one` needs of a breaker or policy."""

    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def _one(name: str, matching: list[_N], every: list[_N], kinds: _Kinds) -> _N:
    """Return the one object in *matching*, or say why there is not one."""
    kind, plural, method = kinds
    if len(matching) == 1:
        return matching[0]
    if matching:
        raise LookupError(
            f"{len(matching)} live {plural} are called {name!r}: use"
            f" aiobreakers.registry.{method}({name!r}) to get them all"
        )
    known = sorted({member.name for member in every})
    shown = ", ".join(repr(known_name) for known_name in known[:_NAMES_SHOWN])
    if len(known) > _NAMES_SHOWN:
        shown += f", ... ({len(known) - _NAMES_SHOWN} more)"
    raise LookupError(
        f"no live {kind} is called {name!r}; "
        + (f"there are {shown}" if known else f"there are no live {plural}")
        + f" ({plural} are known while something holds them)"
    )


registry: Final = Registry()
"""The process's one registry."""
