"""
Test doubles for code that uses aiobreakers: no sleeping, no patching.

:class:`FakeClock` is a virtual clock and an instant sleeper;
:class:`FakeRandom` makes jitter exact. This package is
never imported by :mod:`aiobreakers` itself.
"""

from ._clock import FakeClock as FakeClock
from ._random import FakeRandom as FakeRandom

__all__ = ["FakeClock", "FakeRandom"]
