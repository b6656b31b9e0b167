"""
The ports aiobreakers is built on, their real implementations, and defaults.

Every breaker and retry policy takes a ``clock``, ``sleeper``, ``random`` or
``sink`` as a keyword-only argument. When one is omitted, the object looks up
the process-wide default *each time it needs it*, so :func:`set_defaults` (and
the fixtures of :mod:`aiobreakers.testing`) reach every breaker and policy,
even those built at import time.
"""

from __future__ import annotations

import asyncio
import enum
import random as _random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, TypeVar, runtime_checkable

from ._sniff import in_trio

if TYPE_CHECKING:
    from ._events import Event

_T = TypeVar("_T")

__all__ = [
    "Clock",
    "Defaults",
    "EventSink",
    "RandomSource",
    "Sleeper",
    "SystemClock",
    "SystemRandom",
    "SystemSleeper",
    "get_defaults",
    "set_defaults",
]


@runtime_checkable
class Clock(Protocol):
    """A source of monotonic time, in seconds."""

    def monotonic(self) -> float:
        """
        Return the current time of a clock that never goes backwards.

        Only differences between two readings are meaningful.
        """
        ...


@runtime_checkable
class Sleeper(Protocol):
    """Something that waits: asynchronously in coroutines, blocking in threads."""

    async def sleep_async(self, seconds: float) -> None:
        """Suspend the calling task for *seconds*."""
        ...

    def sleep_sync(self, seconds: float) -> None:
        """Block the calling thread for *seconds*."""
        ...


@runtime_checkable
class RandomSource(Protocol):
    """A source of random numbers for jittered backoff."""

    def uniform(self, a: float, b: float) -> float:
        """Return a random float N with ``a <= N <= b``."""
        ...


@runtime_checkable
class EventSink(Protocol):
    """
    A consumer of the events that breakers and retry policies emit.

    :meth:`emit` is called synchronously, outside any lock, on the thread that
    made the call. An exception it raises is logged and otherwise ignored: a
    failing sink never breaks a protected call.
    """

    def emit(self, event: Event) -> None:
        """Receive one event."""
        ...


class SystemClock:
    """The real monotonic clock (:func:`time.monotonic`)."""

    __slots__ = ()

    if TYPE_CHECKING:
        # What checkers (and `pyright --verifytypes`) see; at run time the
        # method is time.monotonic itself, with no Python frame per call.
        @staticmethod
        def monotonic() -> float:
            """Return :func:`time.monotonic`: seconds, from an arbitrary start."""
            ...

    else:
        monotonic = staticmethod(time.monotonic)


class SystemSleeper:
    """
    Real sleeping: :func:`asyncio.sleep` or ``trio.sleep()``, and :func:`time.sleep`.

    In trio tasks (anyio's trio backend too) it sleeps with trio, found
    lazily: importing aiobreakers never imports trio.
    """

    __slots__ = ()

    async def sleep_async(self, seconds: float) -> None:
        """
        Suspend the calling task for *seconds*.

        In a trio task with ``trio.sleep()`` (so trio's clock, such as a
        ``MockClock``, drives it), otherwise with :func:`asyncio.sleep`.
        """
        if in_trio():
            import trio  # noqa: PLC0415 - already imported: a trio task runs

            await trio.sleep(seconds)
        else:
            await asyncio.sleep(seconds)

    def sleep_sync(self, seconds: float) -> None:
        """Block the calling thread for *seconds* with :func:`time.sleep`."""
        time.sleep(seconds)


class SystemRandom:
    """
    Pseudo-random numbers from a private :class:`random.Random`.

    A private generator, never the global :mod:`random` module, so that seeding
    or drawing from the global one elsewhere does not change our jitter.

    Args:
        seed: Seed for the generator; ``None`` seeds from the OS.
    """

    __slots__ = ("_generator",)

    def __init__(self, seed: int | None = None) -> None:
        self._generator = _random.Random(seed)  # noqa: S311 - jitter, not crypto

    def uniform(self, a: float, b: float) -> float:
        """Return a random float N with ``a <= N <= b``."""
        return self._generator.uniform(a, b)


@dataclass(frozen=True, slots=True)
class Defaults:
    """
    A snapshot of the process-wide default ports.

    Attributes:
        clock: The clock breakers and policies use when built without one.
        sleeper: The sleeper retry policies use when built without one.
        random: The random source retry policies use when built without one.
        sink: The sink that receives every event of every breaker and policy,
            in addition to each one's own ``sink``; ``None`` for none.
    """

    clock: Clock
    sleeper: Sleeper
    random: RandomSource
    sink: EventSink | None

    def install(self) -> Defaults:
        """
        Make this snapshot the process-wide defaults.

        Returns:
            The defaults in force before, to install again later.
        """
        return set_defaults(
            clock=self.clock, sleeper=self.sleeper, random=self.random, sink=self.sink
        )


class _Keep(enum.Enum):
    KEEP = enum.auto()


KEEP: Final = _Keep.KEEP


# On the system clock a quiet breaker (nothing listens to each call) times one
# healthy call in SAMPLE_EVERY for its mean duration: reading the clock costs
# more than the rest of a healthy call's bookkeeping. Any other clock times
# every call, so that fake clocks in tests give exact durations.
SAMPLE_EVERY: Final = 16


class Timer:
    """
    A clock, and how often a quiet breaker times healthy calls on it.

    A breaker times a healthy call when ``pending_tokens & mask == 0``: one in
    :data:`SAMPLE_EVERY` on a :class:`SystemClock`, every one on other clocks.
    """

    __slots__ = ("clock", "mask", "monotonic")

    def __init__(self, clock: Clock) -> None:
        self.use_clock(clock)

    def use_clock(self, clock: Clock) -> None:
        """Read time from *clock* from now on."""
        self.clock = clock
        self.monotonic = clock.monotonic
        self.mask = SAMPLE_EVERY - 1 if isinstance(clock, SystemClock) else 0


class _Current(Timer):
    """The live defaults, read on every call (plain attribute reads: fast)."""

    __slots__ = ("random", "sink", "sleeper")

    def __init__(self) -> None:
        super().__init__(SystemClock())
        self.sink: EventSink | None = None
        self.sleeper: Sleeper = SystemSleeper()
        self.random: RandomSource = SystemRandom()


current: Final = _Current()


def get_defaults() -> Defaults:
    """Return the process-wide default ports now in force."""
    return Defaults(
        clock=current.clock,
        sleeper=current.sleeper,
        random=current.random,
        sink=current.sink,
    )


def set_defaults(
    *,
    clock: Clock | _Keep | None = KEEP,
    sleeper: Sleeper | _Keep | None = KEEP,
    random: RandomSource | _Keep | None = KEEP,
    sink: EventSink | _Keep | None = KEEP,
) -> Defaults:
    """
    Replace some of the process-wide default ports.

    Breakers and policies built without an explicit port use the new default
    from their next call on. Arguments left out keep their current value;
    ``None`` restores the library's own default (the real clock, real sleeping,
    a private random generator, no sink).

    Returns:
        The defaults in force before the call; restore them with
        ``previous.install()``.

    Raises:
        TypeError: A value does not implement its port.
    """
    previous = get_defaults()
    if clock is not KEEP:
        current.use_clock(
            SystemClock() if clock is None else check_port(clock, Clock, "clock")
        )
    if sleeper is not KEEP:
        current.sleeper = (
            SystemSleeper()
            if sleeper is None
            else check_port(sleeper, Sleeper, "sleeper")
        )
    if random is not KEEP:
        current.random = (
            SystemRandom()
            if random is None
            else check_port(random, RandomSource, "random")
        )
    if sink is not KEEP:
        current.sink = None if sink is None else check_port(sink, EventSink, "sink")
    return previous


def check_port(value: _T, port: type, what: str) -> _T:
    """
    Return *value*, or raise :class:`TypeError` if it does not implement *port*.

    *value* must be an instance (a class, even one with the right methods,
    would fail at every call), and each method *port* declares must be
    callable on it: ``isinstance`` with a runtime-checkable protocol checks
    only that the names exist, so it is not used.
    """
    if isinstance(value, type):
        name = value.__name__
        if _implemented_by(value, port):
            advice = f"pass an instance, {name}() rather than {name}"
        else:
            advice = f"pass an instance of a class implementing {port.__name__}"
        raise TypeError(
            f"{what} must be an instance implementing {port.__name__},"
            f" got the class {name}: {advice}"
        )
    methods = _protocol_methods(port)
    missing = [method for method in methods if not hasattr(value, method)]
    if missing:
        raise TypeError(
            f"{what} must implement the {port.__name__} protocol, got {value!r}:"
            f" it has no {', '.join(missing)}"
        )
    for method in methods:
        attribute = getattr(value, method)
        if not callable(attribute):
            raise TypeError(
                f"{what} must implement the {port.__name__} protocol, got"
                f" {value!r}: {what}.{method} must be callable, got"
                f" {type(attribute).__name__} {attribute!r}"
            )
    return value


def _protocol_methods(port: type) -> tuple[str, ...]:
    """Return the public methods *port* declares, such as ``("monotonic",)``."""
    return tuple(
        name
        for name, member in vars(port).items()
        if not name.startswith("_") and callable(member)
    )


def _implemented_by(cls: type, port: type) -> bool:
    """Return whether instances of *cls* would have every method of *port*."""
    return all(
        callable(getattr(cls, method, None)) for method in _protocol_methods(port)
    )
