"""
Counting healthy calls from many threads without taking a lock each time.

A healthy call (a closed-circuit success, an open-circuit rejection, a retry
policy's first-attempt success) changes no decision, so it need not wait for
the owner's lock: it appends a token to the owner's *pending* list and goes
on. The owner folds the pending tokens into its totals under its lock, before
every decision and every snapshot, and whenever the list reaches
:data:`FOLD_AT` tokens, so it stays short.

Exact by construction, not by interpreter timing: ``list.append``,
``len(list)``, slicing a list and deleting a slice are each atomic, as the
Python FAQ ("What kinds of global value mutation are thread-safe?") states
for GIL builds and the free-threading HOWTO states for free-threaded builds
(lists lock themselves). Only the owner, holding its lock, removes tokens,
and it removes exactly those it read, so no token is counted twice or lost,
whatever tracer or profiler runs and wherever threads switch.
"""

from __future__ import annotations

from typing import Final, TypeVar

__all__ = ["FOLD_AT", "take"]

FOLD_AT: Final = 32
"""
Pending tokens at which the call that adds one folds them.

A fold takes the owner's lock once for this many healthy calls (about 6 ns a
call here), and an active owner holds at most this many references between
folds (a list of about 350 bytes at its largest).
"""

_T = TypeVar("_T")


def take(pending: list[_T]) -> list[_T]:
    """
    Remove and return the tokens in *pending* now; the caller holds the lock.

    Tokens appended meanwhile stay for the next fold.
    """
    count = len(pending)
    if not count:
        return []
    taken = pending[:count]
    del pending[:count]
    return taken
