"""
Test doubles for code that uses aiobreakers: no sleeping, no patching.

:class:`FakeClock` is a virtual clock and an instant sleeper. This package is
never imported by :mod:`aiobreakers` itself.
"""

from ._clock import FakeClock as FakeClock

__all__ = ["FakeClock"]
