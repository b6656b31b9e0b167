"""
Which async library runs the current task, found lazily, as sniffio does.

trio is never imported here: if no module has imported it, no trio task can be
running. asyncio is the default for everything else.
"""

from __future__ import annotations

import sys

__all__ = ["in_trio"]


def in_trio() -> bool:
    """Return whether the calling code runs in a trio task (trio's guest mode too)."""
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except (RuntimeError, AttributeError):  # no trio task here, or trio half-imported
        return False
    return True
