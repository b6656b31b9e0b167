"""
The seam where breakers share their circuit with other processes.

A breaker given a store asks it, once, for a :class:`Link`: the breaker's
handle on the shared circuit. The breaker keeps deciding on its own state
machine, in process memory, and tells the link what it decided; the link
carries that to the other processes in the background, and brings what they
decided back through the breaker's ``_store_update`` (which runs the link's
update, usually :meth:`Machine.adopt <aiobreakers._machine.Machine.adopt>`,
under the breaker's lock). The one thing a call may wait for is a fleet-wide
probe permit (:meth:`Link.claim`), and only for a bounded time.

:meth:`Link.changed`, :meth:`Link.tally` and :meth:`Link.probe_done` are
called under the breaker's lock, the others outside it. None may block (but
the claims, briefly), and none may raise: a store must never break a call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker
    from ._machine import Ticket, Transition

__all__ = ["Link", "Store"]


class Link(Protocol):
    """One breaker's handle on a shared circuit (see the module docstring)."""

    def changed(self, change: Transition, *, length: float, failed_probes: int) -> None:
        """
        Share a change of state the breaker's machine made.

        *length* is how long an open spell lasts now, *failed_probes* the
        re-opens by failed probes since the circuit last closed.
        """

    def tally(self, failed: bool, duration: float | None) -> None:
        """Count a finished call of a closed circuit (fleet windows only)."""

    @property
    def tallies(self) -> bool:
        """Whether the fleet decides the window, so :meth:`tally` is wanted."""

    def claim(self, ticket: Ticket) -> bool:
        """
        Ask the fleet for a probe permit for a half-open call; may wait briefly.

        Sets ``ticket.permit`` when granted (the store's own token, which the
        breaker hands back to :meth:`probe_done` or :meth:`release`). Returns
        whether the call may run: also when the store cannot say in time (the
        breaker's own state then decides). A refusal has already brought the
        fleet's state over.
        """

    async def claim_async(self, ticket: Ticket) -> bool:
        """:meth:`claim` for an async caller: never blocks the event loop."""

    def probe_done(self, permit: object, *, failed: bool) -> None:
        """Report the outcome of a call holding a permit; the fleet judges it."""

    def release(self, permit: object) -> None:
        """Give back the permit of a call that ended without a counted outcome."""

    def announce(self, breaker: CircuitBreaker[..., Any], change: Transition) -> None:
        """
        Have ``breaker._tell(change)`` run, after the fleet's changes before it.

        The store tells of the fleet's changes on a thread of its own; a
        change made here, while some are still untold, waits its turn behind
        them, so hooks and sinks hear of every change in the order made.
        """


@runtime_checkable
class Store(Protocol):
    """
    Somewhere breakers of many processes share one circuit per name.

    Pass one as ``CircuitBreaker(..., store=...)``; the one implementation is
    :class:`aiobreakers.redis.RedisStore`.
    """

    def attach(self, breaker: CircuitBreaker[..., Any], /) -> Link:
        """
        Connect *breaker* to its shared circuit (called once, by the breaker).

        Raises:
            ValueError: The breaker's name or configuration cannot be shared
                by this store (the message says why and what to change).
        """
        ...
