"""
The aiobreakers pytest plugin: fixtures that install fakes for one test.

Registered through the ``pytest11`` entry point, so installing aiobreakers is
enough. Each fixture installs its fake as a process-wide default, so breakers
and retry policies built without explicit ports (even at import time) obey
it, and restores the previous default after the test, also when it fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from aiobreakers import set_defaults

from ._clock import FakeClock
from ._fakes import Fakes, fakes
from ._random import FakeRandom
from ._registry import BreakerRegistry
from ._spy import BreakerSpy, RetrySpy

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def breakers() -> BreakerRegistry:
    """
    A :class:`BreakerRegistry`: every live breaker, by name.

    ``breakers["payments"]`` finds one, ``breakers.force("payments",
    "open")`` forces its state, ``breakers.reset_all()`` closes them all (in an
    autouse fixture, it keeps module-level breakers from leaking state from
    one test into the next).
    """
    return BreakerRegistry()


@pytest.fixture
def fake_clock() -> Iterator[FakeClock]:
    """
    A :class:`FakeClock`, installed as the default clock and sleeper.

    Time stands still unless the test advances it, and every retry delay
    passes instantly while moving the clock (see ``fake_clock.sleeps``).
    """
    clock = FakeClock()
    previous = set_defaults(clock=clock, sleeper=clock)
    yield clock
    set_defaults(clock=previous.clock, sleeper=previous.sleeper)


@pytest.fixture
def fake_random() -> Iterator[FakeRandom]:
    """
    A :class:`FakeRandom`, installed as the default random source.

    Draws the middle of every jitter range until the test scripts other
    fractions with :meth:`FakeRandom.set`.
    """
    random = FakeRandom(0.5)
    previous = set_defaults(random=random)
    yield random
    set_defaults(random=previous.random)


@pytest.fixture
def breaker_spy() -> Iterator[BreakerSpy]:
    """A :class:`BreakerSpy` receiving every breaker's and policy's events."""
    with BreakerSpy() as spy:
        yield spy


@pytest.fixture
def retry_spy() -> Iterator[RetrySpy]:
    """A :class:`RetrySpy` receiving every breaker's and policy's events."""
    with RetrySpy() as spy:
        yield spy


@pytest.fixture
def aiobreakers_fakes() -> Iterator[Fakes]:
    """
    Every fake at once, as :func:`aiobreakers.testing.fakes` installs them.

    ``aiobreakers_fakes.clock``, ``.random``, ``.breakers`` and ``.retries``
    are the clock and sleeper, the random source (``FakeRandom(0.5)``), and
    the two spies. Handy in ``usefixtures`` for a whole module or suite.
    """
    with fakes() as installed:
        yield installed
