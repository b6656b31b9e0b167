"""Installing fakes as the process-wide defaults, for code that cannot inject."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiobreakers import set_defaults

from ._clock import FakeClock
from ._random import FakeRandom
from ._sinks import add_sink
from ._spy import BreakerSpy, RetrySpy

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Fakes", "fakes"]


@dataclass(frozen=True)
class Fakes:
    """
    The fakes :func:`fakes` installed.

    Attributes:
        clock: The default clock and sleeper.
        random: The default random source.
        breakers: Records every breaker's events.
        retries: Records every retry policy's events.
    """

    clock: FakeClock
    random: FakeRandom
    breakers: BreakerSpy
    retries: RetrySpy


@contextlib.contextmanager
def fakes(
    *,
    clock: FakeClock | None = None,
    random: FakeRandom | None = None,
) -> Iterator[Fakes]:
    """
    Install fakes as the process-wide defaults for the duration of a block.

    Every breaker and retry policy built without an explicit port, even at
    import time, uses the fake clock, sleeps on it (instantly) and draws
    jitter from the fake random source; every event reaches the spies. On
    exit the previous defaults come back, also when the block raises. Blocks
    nest. This is what the pytest fixtures use; call it directly from
    unittest (``self.enterContext(fakes())``) or scripts.

    Args:
        clock: The clock and sleeper to install; a new :class:`FakeClock`
            when ``None``.
        random: The random source to install; ``FakeRandom(0.5)`` (the
            middle of every jitter range) when ``None``.

    Example::

        with fakes() as fake:
            run_my_code()
            fake.clock.advance(30)
            fake.breakers.assert_tripped("payments")
    """
    installed = Fakes(
        clock=clock or FakeClock(),
        random=random or FakeRandom(0.5),
        breakers=BreakerSpy(),
        retries=RetrySpy(),
    )
    previous = set_defaults(
        clock=installed.clock, sleeper=installed.clock, random=installed.random
    )
    remove_breakers = add_sink(installed.breakers)
    remove_retries = add_sink(installed.retries)
    try:
        yield installed
    finally:
        remove_retries()
        remove_breakers()
        previous.install()
