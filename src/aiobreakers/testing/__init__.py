"""
Test doubles for code that uses aiobreakers: no sleeping, no patching.

- :class:`FakeClock`: a virtual clock and an instant sleeper.
- :class:`TrioClock`: a clock reading trio's, such as a ``MockClock``.
- :class:`FakeRandom`: exact jitter.
- :class:`BreakerSpy`, :class:`RetrySpy`: record events, assert on them.
- :func:`fakes`: install all of them as process-wide defaults for a block.
- :class:`BreakerRegistry`: find breakers by name, force their state.
- A pytest plugin, loaded automatically, with the fixtures ``fake_clock``,
  ``fake_random``, ``breaker_spy`` and ``retry_spy``.

This package is never imported by :mod:`aiobreakers` itself.
"""

from aiobreakers._public import publish as _publish

from ._clock import FakeClock as FakeClock
from ._clock import TrioClock as TrioClock
from ._fakes import Fakes as Fakes
from ._fakes import fakes as fakes
from ._random import FakeRandom as FakeRandom
from ._registry import BreakerRegistry as BreakerRegistry
from ._registry import track_breakers as track_breakers
from ._sinks import add_sink as add_sink
from ._spy import BreakerSpy as BreakerSpy
from ._spy import RetrySpy as RetrySpy
from ._spy import Spy as Spy

__all__ = [
    "BreakerRegistry",
    "BreakerSpy",
    "FakeClock",
    "FakeRandom",
    "Fakes",
    "RetrySpy",
    "Spy",
    "TrioClock",
    "add_sink",
    "fakes",
    "track_breakers",
]

_publish(__name__, globals())
