"""Trip propagation across real processes: one trips, the others hear of it.

Each worker is a process of its own (``multiprocessing``, spawn context) with
its own :class:`~aiobreakers.redis.RedisStore` and a breaker of the same
name, whose ``on_open`` and ``on_close`` hooks record ``time.monotonic()``.
On Linux ``CLOCK_MONOTONIC`` is one clock for every process of the machine,
so readings taken in different processes can be subtracted.

Each round, one worker (in turn) reads the clock and calls ``breaker.trip()``;
the latency of every other worker is the time until its ``on_open`` hook ran.
The hook runs after the breaker's lock is released, so by then the process
already rejects calls: the figure is an upper bound on "until it rejects".
The same worker then calls ``breaker.reset()``, and the time until every other
worker's ``on_close`` hook ran is the close's propagation.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from aiobreakers import BreakerConfig, CircuitBreaker
from aiobreakers.redis import RedisStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from multiprocessing.sharedctypes import Synchronized

NAMESPACE: Final = "fleet-bench"
NAME: Final = "propagation"

# Seconds a spawned worker may take to import everything and join the fleet.
START_SECONDS: Final = 60.0
# The warm-up rounds may wait for a resync (a worker's pub/sub subscription
# may not be in place yet); a measured round that takes longer than
# ROUND_SECONDS for some worker counts that worker as missed.
WARMUP_SECONDS: Final = 5.0
ROUND_SECONDS: Final = 2.0

# One hook call: (worker, "open" or "close", round, time.monotonic()).
Heard = tuple[int, str, int, float]


def _worker(
    index: int,
    url: str,
    commands: Connection,
    events: multiprocessing.Queue[Heard],
    current: Synchronized[int],
) -> None:
    """Run one process of the fleet: join it, then trip or reset when told."""
    try:
        store = RedisStore.from_url(url, namespace=NAMESPACE)
        # Open for an hour: only trip() and reset() move it, never the clock.
        config = BreakerConfig(recovery_timeout=3600.0)
        breaker: CircuitBreaker[..., object] = CircuitBreaker(NAME, config, store=store)

        def hearing(kind: str) -> Callable[[object], None]:
            def hook(_breaker: object) -> None:
                now = time.monotonic()  # first: what follows is not latency
                events.put((index, kind, current.value, now))

            return hook

        breaker.on_open(hearing("open"))
        breaker.on_close(hearing("close"))
    except BaseException as error:
        commands.send(("error", f"{type(error).__name__}: {error}"))
        raise
    commands.send(("ready", 0.0))
    try:
        while (command := commands.recv()) != "stop":
            start = time.monotonic()
            if command == "trip":
                breaker.trip()
            else:
                breaker.reset()
            commands.send((command, start))
    finally:
        store.close()


@dataclass
class Propagation:
    """Seconds from one process's trip (or reset) to each other process's hook."""

    processes: int
    rounds: int
    opened: list[float] = field(default_factory=list)  # one per other process
    opened_all: list[float] = field(default_factory=list)  # slowest, per round
    closed: list[float] = field(default_factory=list)
    closed_all: list[float] = field(default_factory=list)
    missed_open: int = 0  # processes that did not hear within ROUND_SECONDS
    missed_close: int = 0


class _Fleet:
    """The worker processes, their command pipes and the queue of hook calls."""

    def __init__(self, url: str, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.events: multiprocessing.Queue[Heard] = context.Queue()
        self.current: Synchronized[int] = context.Value("i", 0, lock=False)
        self.pipes: list[Connection] = []
        self.workers: list[multiprocessing.process.BaseProcess] = []
        for index in range(processes):
            ours, theirs = context.Pipe()
            worker = context.Process(
                target=_worker,
                args=(index, url, theirs, self.events, self.current),
                name=f"fleet-bench-{index}",
                daemon=True,
            )
            worker.start()
            self.pipes.append(ours)
            self.workers.append(worker)
        try:
            for pipe in self.pipes:
                self._reply(pipe, "ready", START_SECONDS)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _reply(pipe: Connection, expected: str, seconds: float) -> float:
        if not pipe.poll(seconds):
            raise RuntimeError(f"a worker did not answer {expected!r} in {seconds} s")
        kind, value = pipe.recv()
        if kind != expected:
            raise RuntimeError(f"a worker answered {kind!r}: {value}")
        return float(value)

    def command(self, index: int, command: str) -> float:
        """Have worker *index* trip or reset; return when it read the clock."""
        self.pipes[index].send(command)
        return self._reply(self.pipes[index], command, ROUND_SECONDS)

    def hear(
        self, round_index: int, kind: str, others: set[int], seconds: float
    ) -> dict[int, float]:
        """Wait for the hooks of *others* (at most *seconds*); return their times."""
        heard: dict[int, float] = {}
        deadline = time.monotonic() + seconds
        while len(heard) < len(others):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                worker, what, label, when = self.events.get(timeout=left)
            except queue.Empty:
                break
            # The tripper's own hook, and a late hook of an earlier round.
            if worker in others and what == kind and label == round_index:
                heard[worker] = when
        return heard

    def close(self) -> None:
        """Stop every worker; one that does not stop in time is terminated."""
        for pipe in self.pipes:
            try:
                pipe.send("stop")
            except (BrokenPipeError, OSError):  # noqa: PERF203 - exited already
                continue
        for worker in self.workers:
            worker.join(10.0)
            if worker.is_alive():
                worker.terminate()
                worker.join(5.0)
        self.events.close()
        self.events.join_thread()


def _one_round(fleet: _Fleet, round_index: int, result: Propagation | None) -> None:
    processes = len(fleet.workers)
    tripper = round_index % processes
    others = set(range(processes)) - {tripper}
    seconds = ROUND_SECONDS if result is not None else WARMUP_SECONDS
    fleet.current.value = round_index
    for kind in ("open", "close"):
        start = fleet.command(tripper, "trip" if kind == "open" else "reset")
        heard = fleet.hear(round_index, kind, others, seconds)
        if result is None:
            continue
        latencies = [when - start for when in heard.values()]
        missed = len(others) - len(heard)
        if kind == "open":
            result.opened.extend(latencies)
            result.missed_open += missed
            if not missed:
                result.opened_all.append(max(latencies))
        else:
            result.closed.extend(latencies)
            result.missed_close += missed
            if not missed:
                result.closed_all.append(max(latencies))


def measure_propagation(
    url: str, *, processes: int, rounds: int, warmup: int = 3
) -> Propagation:
    """Trip and reset *rounds* times across *processes* real processes."""
    result = Propagation(processes=processes, rounds=rounds)
    fleet = _Fleet(url, processes)
    try:
        for round_index in range(warmup):
            _one_round(fleet, round_index, None)
        for round_index in range(warmup, warmup + rounds):
            _one_round(fleet, round_index, result)
    finally:
        fleet.close()
    return result
