"""The live breakers of the process, for :mod:`aiobreakers.testing` to find."""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from . import _fork

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker

__all__ = ["Registry", "registry"]


class Registry:
    """
    Remembers, weakly, every breaker made while tracking is on.

    Off until :meth:`track` is first called (the pytest plugin calls it as it
    loads), so a process that never asks pays nothing per breaker.
    """

    __slots__ = ("__weakref__", "_breakers", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: weakref.WeakSet[CircuitBreaker[Any, Any]] | None = None
        with _fork.making.lock:
            _fork.register(self, Registry._renew_after_fork)

    def _renew_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may be held for good)."""
        self._lock = threading.Lock()

    def track(self) -> None:
        """Start remembering every breaker made from now on."""
        with self._lock:
            if self._breakers is None:
                self._breakers = weakref.WeakSet()

    def add(self, breaker: CircuitBreaker[Any, Any]) -> None:
        """Remember *breaker*, if tracking is on."""
        if self._breakers is not None:
            with self._lock:
                self._breakers.add(breaker)

    def breakers(self) -> list[CircuitBreaker[Any, Any]]:
        """Return the live breakers made since tracking started."""
        with self._lock:
            return [] if self._breakers is None else list(self._breakers)


registry = Registry()
"""The process's one registry."""
