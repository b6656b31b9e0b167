"""A virtual clock that is also a sleeper."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from typing import TYPE_CHECKING

from aiobreakers._sniff import in_trio
from aiobreakers._validation import is_finite

if TYPE_CHECKING:
    import trio

__all__ = ["FakeClock", "TrioClock"]


class FakeClock:
    """
    A virtual monotonic clock and an instant sleeper, for tests.

    It implements both :class:`~aiobreakers.Clock` and
    :class:`~aiobreakers.Sleeper`: time starts at ``0.0`` and moves only
    through :meth:`advance` and through the clock's own sleeps, which return at
    once after moving virtual time forward. Inject it (``clock=``,
    ``sleeper=``) or install it for everything with the ``fake_clock`` fixture.

    Concurrent :meth:`sleep_async` calls in one event loop wake in deadline
    order: each sleeping task waits until every task due earlier has woken, and
    the clock then jumps to its deadline, so time never goes backwards. It
    works the same in trio tasks (anyio's trio backend too), where virtual
    time moves once every other task is blocked.

    Args:
        start: The clock's first reading, in seconds.

    Attributes:
        sleeps: Every delay requested through :meth:`sleep_sync` and
            :meth:`sleep_async`, in the order requested.
    """

    def __init__(self, start: float = 0.0) -> None:
        _check_seconds("start", start, allow_negative=True)
        self._now = float(start)
        self.sleeps: list[float] = []
        self._lock = threading.Lock()
        # Pending async sleepers: (deadline, order, future), earliest first.
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._waking: asyncio.Handle | None = None
        # The loop the pending sleepers belong to (one loop at a time).
        self._loop: asyncio.AbstractEventLoop | None = None
        # Pending sleepers in trio tasks, and the trio run (its token) whose
        # waking task serves them; None when no waking task runs.
        self._trio_sleepers: list[tuple[float, int, trio.Event]] = []
        self._trio_run: object | None = None

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"

    def monotonic(self) -> float:
        """Return the virtual time, in seconds."""
        return self._now

    def time(self) -> float:
        """Return the virtual time (an alias of :meth:`monotonic`)."""
        return self._now

    def advance(self, seconds: float) -> float:
        """
        Move virtual time forward by *seconds*.

        Returns:
            The new virtual time.

        Raises:
            ValueError: *seconds* is negative or not finite.
        """
        _check_seconds("seconds", seconds)
        with self._lock:
            self._now += seconds
            return self._now

    def sleep_sync(self, seconds: float) -> None:
        """Record the delay and advance virtual time by it, returning at once."""
        _check_seconds("seconds", seconds)
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds

    async def sleep_async(self, seconds: float) -> None:
        """
        Record the delay and wake when virtual time reaches its deadline.

        No real time passes: once the event loop has run every ready task, the
        clock jumps to the earliest pending deadline and wakes its sleeper.
        """
        _check_seconds("seconds", seconds)
        if in_trio():
            await self._sleep_trio(seconds)
            return
        loop = asyncio.get_running_loop()
        with self._lock:
            self.sleeps.append(seconds)
            deadline = self._now + seconds
        if loop is not self._loop:
            self._adopt(loop)
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        self._schedule_wake(loop)
        try:
            await future
        finally:
            if not future.done():
                future.cancel()

    async def _sleep_trio(self, seconds: float) -> None:
        """:meth:`sleep_async` in a trio task: trio primitives only."""
        import trio  # noqa: PLC0415 - already imported: a trio task runs

        with self._lock:
            self.sleeps.append(seconds)
            deadline = self._now + seconds
        run = trio.lowlevel.current_trio_token()
        if run is not self._trio_run:
            # Sleepers of an earlier run can never wake: forget them.
            self._trio_sleepers = []
            self._trio_run = run
            trio.lowlevel.spawn_system_task(
                self._wake_trio, run, name="aiobreakers FakeClock"
            )
        entry = (deadline, next(self._order), trio.Event())
        heapq.heappush(self._trio_sleepers, entry)
        try:
            await entry[2].wait()
        finally:
            if not entry[2].is_set() and entry in self._trio_sleepers:
                self._trio_sleepers.remove(entry)  # cancelled while sleeping
                heapq.heapify(self._trio_sleepers)

    async def _wake_trio(self, run: object) -> None:
        """Wake the earliest trio sleeper each time every other task is blocked."""
        import trio.testing  # noqa: PLC0415 - already imported: a trio task runs

        try:
            while self._trio_run is run and self._trio_sleepers:
                await trio.testing.wait_all_tasks_blocked()
                if self._trio_run is not run or not self._trio_sleepers:
                    break
                deadline, _, wake = heapq.heappop(self._trio_sleepers)
                with self._lock:
                    self._now = max(self._now, deadline)
                wake.set()
        finally:
            if self._trio_run is run:
                self._trio_run = None

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """
        Serve sleepers of a new event loop (an earlier one may have stopped).

        Sleepers left behind by another loop can never be woken there (its
        loop no longer runs), so they are forgotten, and so is its wake-up.
        """
        self._sleepers = [
            entry for entry in self._sleepers if entry[2].get_loop() is loop
        ]
        heapq.heapify(self._sleepers)
        self._waking = None
        self._loop = loop

    def _schedule_wake(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._waking is None:
            self._waking = loop.call_soon(self._wake_next, loop, 0)

    def _wake_next(self, loop: asyncio.AbstractEventLoop, rounds: int) -> None:
        # Let every task that can run do so first, so that one about to sleep
        # for less takes its place in the queue before the clock moves.
        if rounds < _MAX_SETTLE_ROUNDS and _busy(loop, rounds):
            self._waking = loop.call_soon(self._wake_next, loop, rounds + 1)
            return
        self._waking = None
        while self._sleepers:
            deadline, _, future = heapq.heappop(self._sleepers)
            if future.done():  # cancelled while sleeping
                continue
            with self._lock:
                self._now = max(self._now, deadline)
            future.set_result(None)
            break
        if self._sleepers:
            self._schedule_wake(loop)


# A loop that keeps work ready forever (a task spinning on ``sleep(0)``) must
# not stall virtual time: after this many rounds the next sleeper wakes anyway.
_MAX_SETTLE_ROUNDS = 1000
# Rounds to wait on loops that do not show their ready queue (e.g. uvloop).
_BLIND_SETTLE_ROUNDS = 5


def _busy(loop: asyncio.AbstractEventLoop, rounds: int) -> bool:
    """Whether other callbacks are ready to run in *loop* right now."""
    # asyncio's own loops keep ready callbacks in ``_ready``; reading it is the
    # only way to tell that every task is blocked (trio's autojump knows this
    # natively). Other loops get a fixed number of rounds instead.
    ready = getattr(loop, "_ready", None)
    if ready is None:
        return rounds < _BLIND_SETTLE_ROUNDS
    return len(ready) > 0


def _check_seconds(name: str, value: float, *, allow_negative: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not is_finite(value) or (value < 0 and not allow_negative):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


class TrioClock:
    """
    A :class:`~aiobreakers.Clock` that reads trio's clock, for trio tests.

    Pass it as ``clock=`` (or install it with :func:`~aiobreakers.set_defaults`)
    so that breakers measure time on the same clock trio sleeps on: with
    ``trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))``,
    recovery timeouts, retry delays (on the default sleeper) and attempt
    timeouts all pass in virtual time, with no real waiting.

    Args:
        clock: A trio clock to read, such as a ``trio.testing.MockClock``;
            anything with a ``current_time()`` method. ``None`` reads
            ``trio.current_time()``, the clock of the running ``trio.run``,
            so it must then be read inside one: pass the clock if anything
            (a metrics exporter's thread, say) reads the breaker outside.
    """

    __slots__ = ("_clock",)

    def __init__(self, clock: trio.abc.Clock | None = None) -> None:
        self._clock = clock

    def __repr__(self) -> str:
        return "TrioClock()" if self._clock is None else f"TrioClock({self._clock!r})"

    def monotonic(self) -> float:
        """
        Return trio's current time, in seconds.

        Raises:
            RuntimeError: Built without a clock and read outside ``trio.run``.
        """
        if self._clock is not None:
            return self._clock.current_time()
        import trio  # noqa: PLC0415 - trio is a test dependency, never aiobreakers'

        return trio.current_time()
