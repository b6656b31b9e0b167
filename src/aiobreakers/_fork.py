"""
What a process forked from this one must not inherit: locks held elsewhere.

A child of ``os.fork()`` has one thread, but a copy of every lock as it was: a
lock that another thread of the parent held at that moment stays held in the
child for good. Objects with locks register here; in the child, before any
other code runs, each is given new locks and drops what only the parent's
other threads could have finished (probe slots of calls in flight).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["making", "register"]

# The objects to renew in a child, each with the function that renews it;
# those renewed last start threads that use the others.
_renewers: Final[weakref.WeakKeyDictionary[Any, Callable[[Any], None]]] = (
    weakref.WeakKeyDictionary()
)
_last: Final[weakref.WeakKeyDictionary[Any, Callable[[Any], None]]] = (
    weakref.WeakKeyDictionary()
)


class _Making:
    """The process-wide lock under which owners make their own locks."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock = threading.Lock()


making: Final = _Making()
"""Hold ``making.lock`` to make an owner's lock or to register an owner."""


def register(
    owner: object, renew: Callable[[Any], None], *, last: bool = False
) -> None:
    """
    Have ``renew(owner)`` called in every child forked from now on.

    The caller holds ``making.lock``. *owner* is held weakly. With *last*,
    it is called after every other owner is renewed (to start threads).
    """
    (_last if last else _renewers)[owner] = renew


def _in_child() -> None:
    making.lock = threading.Lock()
    for renewers in (_renewers, _last):
        for owner, renew in list(renewers.items()):
            renew(owner)


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_in_child)
