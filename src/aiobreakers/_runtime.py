"""What the interpreter guarantees, decided once at import."""

from __future__ import annotations

import sys
from typing import Final

# On builds with a GIL, the interpreter switches threads only at calls and
# backward jumps, never inside a run of plain attribute updates with no call
# in between: such a run is atomic for other Python threads, so counting a
# healthy call needs no lock and stays exact. The free-threaded build offers no
# such thing, and every count takes a lock there.
GIL: Final[bool] = getattr(sys, "_is_gil_enabled", lambda: True)()
