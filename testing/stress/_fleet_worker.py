"""
One process of the fleet storm (``_fleet.py``), run in a spawned process.

It has its own :class:`~aiobreakers.redis.RedisStore` (``from_url``) and the
storm's breakers, of the same names in every process, and takes commands
from the storm over a pipe: start calling (threads and an event loop, with a
random mix of failures, trips and resets), say whether a fault is on, hang
in a probe (to be killed there), stop calling and flush, report states, trip
or reset every breaker, wait for a state, close and report. Each command is
answered ``("reply", value)``; the one message sent unasked is
``("probing", name)``, from inside a probe that never ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import statistics
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from aiobreakers import (
    BreakerConfig,
    CircuitBreaker,
    CircuitState,
    StoreDegraded,
    StoreRecovered,
)
from aiobreakers.redis import RedisStore

from ._core import JOIN_TIMEOUT, Lateness, Outcome, Tally, act, rounds
from ._faults import CountingHandler, captured_logs
from ._threads import entry_points

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from multiprocessing.connection import Connection

    from aiobreakers import Event

NAMESPACE: Final = "stress-fleet"
CONFIG: Final = BreakerConfig(
    failure_threshold=3,
    success_threshold=2,
    recovery_timeout=0.1,
    half_open_max_calls=2,
)
# "solo" allows one probe at a time, and only it is probed to death: while
# the dead prober's permit lives, nobody else may probe it. The control
# threads leave it alone, so that only calls move it.
SOLO: Final = "solo"
CONFIGS: Final = {
    "alpha": CONFIG,
    "beta": CONFIG,
    "gamma": CONFIG,
    SOLO: dataclasses.replace(CONFIG, success_threshold=1, half_open_max_calls=1),
}
NAMES: Final = tuple(CONFIGS)
# The chance that a call fails, per breaker and process, changed at random
# by each process's control thread: mostly healthy, sometimes flaky, now and
# then down (which trips the circuit within a few calls).
FAILURE_CHANCES: Final = (0.0, 0.0, 0.05, 0.3, 0.9)
SYNC_THREADS: Final = 2
TASKS: Final = 16
BURST: Final = 5  # calls a thread makes between naps of 1 ms
LOOP_TICK: Final = 0.005  # the event loop's lag is measured on this sleep


@dataclass(frozen=True)
class Settings:
    """What the storm tells each worker."""

    url: str
    index: int
    seed: int
    permit_ttl: float


@dataclass
class Latencies:
    """Seconds per call, by the state the call met and whether a fault was on."""

    closed_calm: array[float] = field(default_factory=lambda: array("d"))
    closed_fault: array[float] = field(default_factory=lambda: array("d"))
    open_calm: array[float] = field(default_factory=lambda: array("d"))
    open_fault: array[float] = field(default_factory=lambda: array("d"))
    half_open: array[float] = field(default_factory=lambda: array("d"))

    def add(self, other: Latencies) -> None:
        for name in vars(self):
            getattr(self, name).extend(getattr(other, name))

    def record(
        self,
        before: CircuitState,
        after: CircuitState,
        seconds: float,
        *,
        rejected: bool,
        fault: bool,
    ) -> None:
        """File one call; calls that met a change of state midway are left out."""
        if before is CircuitState.HALF_OPEN:
            self.half_open.append(seconds)
        elif before is not after:
            return
        elif before is CircuitState.CLOSED and not rejected:
            (self.closed_fault if fault else self.closed_calm).append(seconds)
        elif before is CircuitState.OPEN and rejected:
            (self.open_fault if fault else self.open_calm).append(seconds)

    def summary(self) -> dict[str, tuple[int, float, float, float]]:
        """Per kind: how many calls, and their p50, p99 and longest (seconds)."""
        return {name: _figures(values) for name, values in vars(self).items()}


def _figures(values: array[float]) -> tuple[int, float, float, float]:
    if not values:
        return (0, 0.0, 0.0, 0.0)
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (len(ordered), statistics.median(ordered), p99, ordered[-1])


class Recorder:
    """The store's sink and the breakers' state hooks: what happened, and when."""

    def __init__(self) -> None:
        self.store_events: list[tuple[str, float, str]] = []
        # Per breaker: (state, time.monotonic()) of each change, in order.
        self.changes: dict[str, list[tuple[str, float]]] = {n: [] for n in NAMES}
        self.cond = threading.Condition()

    def emit(self, event: Event) -> None:
        now = time.monotonic()
        if isinstance(event, StoreDegraded):
            with self.cond:
                self.store_events.append(("degraded", now, event.error))
        elif isinstance(event, StoreRecovered):
            with self.cond:
                self.store_events.append(("recovered", now, ""))

    def hook(self, state: str) -> Callable[[CircuitBreaker[..., Any]], None]:
        def changed(breaker: CircuitBreaker[..., Any]) -> None:
            now = time.monotonic()  # first: what follows is not latency
            with self.cond:
                self.changes[breaker.name].append((state, now))
                self.cond.notify_all()

        return changed

    def reached(self, name: str, state: str, since: float) -> float | None:
        """Under cond: when *name* first changed to *state* at or after *since*."""
        for new, at in self.changes[name]:
            if new == state and at >= since:
                return at
        return None


async def _work(outcome: Outcome) -> str:
    await asyncio.sleep(0)
    return act(outcome)


class Worker:
    """The storm's callers in this process, and the commands' implementations."""

    def __init__(self, settings: Settings, connection: Connection) -> None:
        self.settings = settings
        self.connection = connection
        self.send_lock = threading.Lock()
        self.baseline = {thread.ident for thread in threading.enumerate()}
        self.recorder = Recorder()
        self.store = RedisStore.from_url(
            settings.url,
            namespace=NAMESPACE,
            sink=self.recorder,
            permit_ttl=settings.permit_ttl,
        )
        self.breakers = [
            CircuitBreaker(name, config, store=self.store)
            for name, config in CONFIGS.items()
        ]
        for breaker in self.breakers:
            breaker.on_open(self.recorder.hook("open"))
            breaker.on_close(self.recorder.hook("closed"))
            breaker.on_half_open(self.recorder.hook("half_open"))
        self.random = random.Random(settings.seed)  # noqa: S311 - reproducible choices
        self.chances = dict.fromkeys(NAMES, 0.0)
        self.fault = False
        # Whether the callers leave "solo" alone (while a prober is set up).
        self.spare_solo = False
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.tallies: list[Tally] = []
        self.latencies: list[Latencies] = []
        self.loop_lags = array("d")
        self.trips = self.resets = 0
        self.lateness = Lateness()

    def send(self, *message: object) -> None:
        with self.send_lock:
            self.connection.send(message)

    # -- the callers --------------------------------------------------------------

    def start(self) -> None:
        self.lateness.__enter__()
        targets: list[Callable[[], None]] = [self._control, self._loop_thread]
        targets += [self._caller] * SYNC_THREADS
        for index, target in enumerate(targets):
            thread = threading.Thread(
                target=target, name=f"stress-fleet-{index}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def _control(self) -> None:
        """Change the failure chances; trip or reset a breaker now and then."""
        chooser = random.Random(self.random.random())  # noqa: S311 - as above
        for _ in rounds():
            if self.stop.wait(chooser.uniform(0.05, 0.3)):
                return
            name = chooser.choice(NAMES)
            self.chances[name] = chooser.choice(FAILURE_CHANCES)
            roll = chooser.random()
            if name == SOLO:
                continue
            if roll < 0.1:
                self.breakers[NAMES.index(name)].trip()
                self.trips += 1
            elif roll < 0.2:
                self.breakers[NAMES.index(name)].reset()
                self.resets += 1

    def _outcome(self, chooser: random.Random, name: str) -> Outcome:
        return Outcome.FAIL if chooser.random() < self.chances[name] else Outcome.OK

    def _caller(self) -> None:
        chooser = random.Random(self.random.random())  # noqa: S311 - as above
        tally, latencies = Tally(), Latencies()
        self.tallies.append(tally)
        self.latencies.append(latencies)
        ways = [(breaker, entry_points(breaker)) for breaker in self.breakers]
        for number in rounds():
            if self.stop.is_set():
                return
            breaker, calls = chooser.choice(ways)
            if self.spare_solo and breaker.name == SOLO:
                continue
            call = chooser.choice(calls)
            outcome = self._outcome(chooser, breaker.name)
            before = breaker.state
            rejected = tally.rejected
            start = time.perf_counter()
            tally.call(call, outcome)
            seconds = time.perf_counter() - start
            latencies.record(
                before,
                breaker.state,
                seconds,
                rejected=tally.rejected > rejected,
                fault=self.fault,
            )
            if number % BURST == 0:
                time.sleep(0.001)

    def _loop_thread(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        tally, latencies = Tally(), Latencies()
        self.tallies.append(tally)
        self.latencies.append(latencies)
        tasks = [
            asyncio.create_task(self._task(tally, latencies)) for _ in range(TASKS)
        ]
        tasks.append(asyncio.create_task(self._ticker()))
        await asyncio.wait_for(asyncio.gather(*tasks), JOIN_TIMEOUT * 10)

    async def _task(self, tally: Tally, latencies: Latencies) -> None:
        chooser = random.Random(self.random.random())  # noqa: S311 - as above
        ways: list[tuple[CircuitBreaker[..., Any], list[Any]]] = []
        for breaker in self.breakers:
            decorated = breaker(_work)

            async def by_call_async(
                outcome: Outcome, breaker: CircuitBreaker[..., Any] = breaker
            ) -> str:
                return await breaker.call_async(_work, outcome)

            async def by_async_with(
                outcome: Outcome, breaker: CircuitBreaker[..., Any] = breaker
            ) -> str:
                async with breaker:
                    await asyncio.sleep(0)
                    return act(outcome)

            ways.append((breaker, [decorated, by_call_async, by_async_with]))
        for _ in rounds():
            if self.stop.is_set():
                return
            breaker, calls = chooser.choice(ways)
            if self.spare_solo and breaker.name == SOLO:
                await asyncio.sleep(0)
                continue
            call: Callable[[Outcome], Awaitable[object]] = chooser.choice(calls)
            outcome = self._outcome(chooser, breaker.name)
            before = breaker.state
            rejected = tally.rejected
            start = time.perf_counter()
            await tally.call_async(call, outcome)
            seconds = time.perf_counter() - start
            latencies.record(
                before,
                breaker.state,
                seconds,
                rejected=tally.rejected > rejected,
                fault=self.fault,
            )
            await asyncio.sleep(0.002)

    async def _ticker(self) -> None:
        """How late the loop wakes from a short sleep: whether anything blocks it."""
        for _ in rounds():
            if self.stop.is_set():
                return
            start = time.perf_counter()
            await asyncio.sleep(LOOP_TICK)
            self.loop_lags.append(max(0.0, time.perf_counter() - start - LOOP_TICK))

    def quiet(self) -> tuple[bool, bool]:
        """Stop the callers; flush: whether it did, and whether the store is healthy."""
        self.stop.set()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self.threads):
            raise RuntimeError("a caller thread of the fleet storm hung")
        self.lateness.__exit__()
        return (self.store.flush(5.0), self.store.healthy)

    # -- a probe that never ends --------------------------------------------------

    def hang(self) -> None:
        threading.Thread(
            target=self._hang, name="stress-fleet-hang", daemon=True
        ).start()

    def _hang(self) -> None:
        """Trip a breaker, and once half-open, probe it until killed."""

        def forever() -> None:
            self.send("probing", (breaker.name, time.monotonic()))
            threading.Event().wait()

        breaker = self.breakers[NAMES.index(SOLO)]
        for _ in rounds(seconds=10.0):
            if breaker.state is not CircuitState.HALF_OPEN:
                breaker.trip()
                # Written before the spell ends, so that the probe asks the
                # fleet for its permit (a claim on a closed circuit needs none).
                self.store.flush(1.0)
            for _ in rounds(seconds=1.0):
                if breaker.state is not CircuitState.OPEN:
                    break
                time.sleep(0.0005)
            try:
                breaker.call_sync(forever)
            except Exception:  # noqa: S112 - refused: another process probes
                continue

    # -- the end --------------------------------------------------------------------

    def states(self) -> dict[str, str]:
        return {breaker.name: breaker.state.value for breaker in self.breakers}

    def act(self, action: str) -> float:
        """Trip or reset every breaker; when it began (``time.monotonic()``)."""
        start = time.monotonic()
        for breaker in self.breakers:
            getattr(breaker, action)()
        return start

    def await_state(
        self, state: str, since: float, timeout: float
    ) -> dict[str, float | None]:
        """Seconds from *since* until each breaker changed to *state* (None: never)."""
        recorder = self.recorder
        with recorder.cond:
            recorder.cond.wait_for(
                lambda: all(recorder.reached(n, state, since) for n in NAMES), timeout
            )
            found = {n: recorder.reached(n, state, since) for n in NAMES}
        return {n: None if at is None else at - since for n, at in found.items()}

    def close(self) -> dict[str, Any]:
        """Close the store; report everything the storm checks."""
        self.store.close()
        # close() stops the claim threads without waiting (they end at once
        # when idle): give every thread the store started a moment to end.
        deadline = time.monotonic() + 2.0
        for thread in threading.enumerate():
            if thread.ident not in self.baseline and thread.name.startswith(
                "aiobreakers-"
            ):
                thread.join(max(0.0, deadline - time.monotonic()))
        left = [
            thread.name
            for thread in threading.enumerate()
            if thread.ident not in self.baseline and thread.is_alive()
        ]
        tally, latencies = Tally(), Latencies()
        for each in self.tallies:
            tally.add(each)
        for one in self.latencies:
            latencies.add(one)
        lags = sorted(self.loop_lags)
        return {
            "tally": tally,
            "latencies": latencies.summary(),
            "store_events": self.recorder.store_events,
            "threads_left": left,
            "lateness": (self.lateness.quantile(0.99), self.lateness.longest),
            "loop_lag": (
                lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else 0.0,
                lags[-1] if lags else 0.0,
            ),
            "trips": self.trips,
            "resets": self.resets,
        }


def serve(settings: Settings, connection: Connection) -> None:
    """Run one process of the fleet storm until told to stop."""
    with captured_logs() as logs:
        _serve(settings, connection, logs)


def _serve(settings: Settings, connection: Connection, logs: CountingHandler) -> None:
    worker = Worker(settings, connection)
    worker.store.flush(5.0)
    worker.send("reply", "ready")
    commands: dict[str, Callable[[Any], object]] = {
        "start": lambda _: worker.start(),
        "phase": lambda fault: setattr(worker, "fault", fault),
        "spare_solo": lambda spare: setattr(worker, "spare_solo", spare),
        "hang": lambda _: worker.hang(),
        "quiet": lambda _: worker.quiet(),
        "flush": lambda _: worker.store.flush(5.0),
        "states": lambda _: worker.states(),
        "act": worker.act,
        "await": lambda argument: worker.await_state(*argument),
    }
    for _ in rounds():
        command, argument = connection.recv()
        if command == "stop":
            worker.send("reply", {**worker.close(), "log_records": logs.records.value})
            return
        worker.send("reply", commands[command](argument))
