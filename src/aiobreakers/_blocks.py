"""
Which ``with breaker:`` block an ``__exit__`` ends.

A breaker used as a context manager has no per-block object to keep the
admitted spell and start time in: ``__enter__`` returns the breaker itself.
Each open block is kept in two places: the current context's chain of open
blocks (a :class:`~contextvars.ContextVar`, so concurrent threads and tasks
never mix theirs), and its breaker's :class:`OpenBlocks`. ``__exit__`` ends
the innermost open block of its breaker in the current context; a block
exited in another context than it entered (a generator stepped in fresh
context copies, an async generator closed by another task) ends the newest
open block of that breaker instead, so it is still counted once.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ._machine import Spell, Ticket

__all__ = ["Block", "OpenBlocks"]


class Block:
    """One open ``with`` block: what its ``__exit__`` needs."""

    __slots__ = ("outer", "owner", "spell", "start", "ticket")

    def __init__(
        self,
        owner: OpenBlocks,
        spell: Spell,
        start: float,
        ticket: Ticket,
        outer: Block | None,
    ) -> None:
        self.owner = owner
        self.spell = spell
        self.start = start
        # What the block's probe slot, if it took one, is held under.
        self.ticket = ticket
        self.outer = outer


# The blocks open in the current thread or task, innermost first.
_innermost: Final[ContextVar[Block | None]] = ContextVar(
    "aiobreakers_blocks", default=None
)


class OpenBlocks:
    """The open ``with`` blocks of one breaker, in the order they were entered."""

    __slots__ = ("_blocks", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: list[Block] = []

    def renew_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may be held for good)."""
        self._lock = threading.Lock()

    def enter(self, spell: Spell, start: float, ticket: Ticket) -> None:
        """Open a block admitted under *spell* with *ticket* at time *start*."""
        block = Block(self, spell, start, ticket, _innermost.get())
        with self._lock:
            self._blocks.append(block)
        _innermost.set(block)

    def exit(self, name: str) -> Block:
        """
        End the block an ``__exit__`` of breaker *name* closes, and return it.

        Its ticket is marked done before the block is taken off the list.

        Raises:
            RuntimeError: The breaker has no open block.
        """
        top = _innermost.get()
        with self._lock:
            block = top
            while block is not None and (
                block.owner is not self or block not in self._blocks
            ):
                block = block.outer
            if block is None:
                if not self._blocks:
                    raise RuntimeError(
                        f"circuit breaker {name!r} exited a block it did not enter"
                    )
                block = self._blocks[-1]
            block.ticket.done = True
            self._blocks.remove(block)
        if block is top:
            _innermost.set(block.outer)
        return block
