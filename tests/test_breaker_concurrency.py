"""
One circuit breaker shared by many threads and tasks, and wall-clock jumps.

No test sleeps: threads meet at barriers and conditions, tasks at events and
``asyncio.sleep(0)``, and time is a shared :class:`FakeClock` (or, for the
wall-clock tests, the real monotonic clock, which time-machine leaves alone).

The async tests here run under asyncio only: they drive asyncio tasks one by
one (``Task.cancel`` on tasks that have not started yet, ``Task.exception``,
``asyncio.shield`` of one shared future, and ``create_task``'s copy of the
context for a generator stepped in other tasks), which trio has no
counterpart for. Probe slots and their cancellation under trio are covered by
the tests in test_breaker.py, which run under both backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import random
import sys
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

import pytest
import time_machine

from aiobreakers import BreakerConfig, CircuitBreaker, CircuitOpenError, CircuitState
from aiobreakers.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        Awaitable,
        Callable,
        Generator,
        Iterator,
    )

# asyncio only (see the module docstring); anyio's plugin runs these tests.
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])
pytestmark = pytest.mark.anyio

THREADS: Final = 8
WAIT: Final = 10.0  # seconds a barrier or condition waits before the test fails


class Abort(BaseException):
    """A non-Exception ending a call (like KeyboardInterrupt): counted as neither."""


def act(outcome: str) -> str:
    """Finish protected work as *outcome* says."""
    if outcome == "ok":
        return "ok"
    if outcome == "fail":
        raise ValueError(outcome)
    if outcome == "excluded":
        raise KeyError(outcome)
    raise Abort(outcome)


class Tally:
    """Outcomes seen by the callers, added up under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def record(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def run(self, call: Callable[..., object], *args: object) -> str:
        """Make one call, record how it ended, and return that."""
        try:
            call(*args)
        except CircuitOpenError:
            ended = "rejected"
        except ValueError:
            ended = "fail"
        except KeyError:
            ended = "excluded"
        except Abort:
            ended = "abort"
        else:
            ended = "ok"
        self.record(ended)
        return ended

    async def run_async(
        self, call: Callable[..., Awaitable[object]], *args: object
    ) -> None:
        """Await one call and record how it ended."""
        try:
            await call(*args)
        except CircuitOpenError:
            self.record("rejected")
        except ValueError:
            self.record("fail")
        except KeyError:
            self.record("excluded")
        except Abort:
            self.record("abort")
        else:
            self.record("ok")

    def check(self, breaker: CircuitBreaker[..., Any]) -> None:
        """The breaker counted every call exactly once, as the callers saw it."""
        metrics = breaker.get_metrics()
        seen = self.counts
        assert metrics["total_calls"] == (
            metrics["total_successes"] + metrics["total_failures"]
        )
        assert metrics["total_successes"] == seen["ok"] + seen["excluded"]
        assert metrics["total_failures"] == seen["fail"]
        assert metrics["total_rejected"] == seen["rejected"]
        made = sum(seen.values())
        assert (
            metrics["total_calls"] + metrics["total_rejected"] == made - seen["abort"]
        )


def run_threads(target: Callable[[int], None], count: int = THREADS) -> None:
    """Run ``target(i)`` in *count* threads at once; re-raise what any raised."""
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]


def hold_block(breaker: CircuitBreaker[..., Any]) -> Generator[None, None, None]:
    """A ``with`` block on *breaker* that stays open while suspended."""
    with breaker:
        yield


def count_probe_slots(breaker: CircuitBreaker[..., Any], clock: FakeClock) -> int:
    """Open the circuit, wait out the timeout, and count the probes it admits."""
    breaker.trip()
    clock.advance(breaker.config.recovery_timeout)
    held: list[tuple[contextvars.Context, Generator[None, None, None]]] = []
    rejection: CircuitOpenError | None = None
    try:
        for _ in range(breaker.config.half_open_max_calls + 5):
            # Each block in its own context, as concurrent callers would be.
            context = contextvars.copy_context()
            block = hold_block(breaker)
            try:
                context.run(next, block)
            except CircuitOpenError as error:
                rejection = error
                break
            held.append((context, block))
    finally:
        for context, block in held:
            context.run(block.close)
    assert rejection is not None
    assert rejection.state == "half_open"
    return len(held)


@pytest.fixture
def fine_switching() -> Iterator[None]:
    """Switch threads often, so that calls really interleave."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(previous)


# -- (a) threads ---------------------------------------------------------------


def lockstep_outcome(index: int, round_: int) -> str:
    """What thread *index*'s call does in round *round_*."""
    if round_ % 10 < 3:
        return "fail"  # everybody fails: the circuit opens
    if (round_ + index) % 7 == 0:
        return "excluded"
    if (round_ * 3 + index) % 11 == 0:
        return "abort"
    if (round_ + 2 * index) % 13 == 0:
        return "fail"
    return "ok"


def hammer_outcome(index: int, call: int) -> str:
    """What thread *index*'s call number *call* does: failures come in runs."""
    if (call // 40) % 2 == 1:
        return "fail"
    if (call + index) % 17 == 0:
        return "abort"
    return "excluded" if (call * index) % 5 == 1 else "ok"


@pytest.mark.usefixtures("fine_switching")
def test_threads_in_lockstep_never_exceed_the_probe_limit() -> None:
    """Eight threads calling at once get exactly the admissions the state allows."""
    clock = FakeClock()
    config = BreakerConfig(
        failure_threshold=2,
        success_threshold=2,
        recovery_timeout=1.0,
        half_open_max_calls=3,
        excluded_exceptions=(KeyError,),
    )
    breaker = CircuitBreaker("lockstep", config, clock=clock)
    rounds = 120
    states: list[CircuitState] = []
    admitted = [0] * rounds
    cond = threading.Condition()
    in_flight = 0
    max_in_flight = 0
    arrived = 0

    def next_round() -> None:
        # Runs in one thread once all eight have finished the previous round.
        nonlocal arrived
        arrived = 0
        clock.advance(0.5)
        states.append(breaker.state)

    barrier = threading.Barrier(THREADS, action=next_round)

    def arrive() -> None:
        nonlocal arrived
        with cond:
            arrived += 1
            cond.notify_all()

    @breaker
    def protected(round_: int, outcome: str) -> str:
        nonlocal in_flight, max_in_flight
        with cond:
            in_flight += 1
            max_in_flight = max(max_in_flight, in_flight)
            admitted[round_] += 1
        arrive()
        with cond:
            # Stay in flight until every thread has been admitted or rejected.
            assert cond.wait_for(lambda: arrived == THREADS, WAIT)
            in_flight -= 1
        return act(outcome)

    tally = Tally()

    def worker(index: int) -> None:
        for round_ in range(rounds):
            barrier.wait(WAIT)
            ended = tally.run(protected, round_, lockstep_outcome(index, round_))
            if ended == "rejected":
                arrive()  # a rejected call never reaches protected()

    run_threads(worker)

    expected = {
        CircuitState.CLOSED: THREADS,
        CircuitState.HALF_OPEN: config.half_open_max_calls,
        CircuitState.OPEN: 0,
    }
    assert [expected[state] for state in states] == admitted
    assert max_in_flight == THREADS
    probing = [
        n
        for state, n in zip(states, admitted, strict=True)
        if state is not CircuitState.CLOSED
    ]
    assert max(probing) == config.half_open_max_calls
    assert set(states) == set(CircuitState), "every state was visited"
    tally.check(breaker)
    assert breaker.get_metrics()["total_trips"] >= rounds // 10


@pytest.mark.usefixtures("fine_switching")
def test_threads_hammering_count_every_call_once() -> None:
    """Free-running threads trip and recover it; every call is counted once."""
    clock = FakeClock()
    config = BreakerConfig(
        failure_threshold=3,
        success_threshold=2,
        recovery_timeout=0.5,
        half_open_max_calls=2,
        excluded_exceptions=(KeyError,),
    )
    breaker = CircuitBreaker("hammer", config, clock=clock)
    closes = Tally()
    breaker.on_close(lambda _: closes.record("closed"))
    calls = 1500

    @breaker
    def protected(outcome: str) -> str:
        return act(outcome)

    tally = Tally()

    def worker(index: int) -> None:
        for call in range(calls):
            clock.advance(0.01)
            tally.run(protected, hammer_outcome(index, call))

    run_threads(worker)

    assert sum(tally.counts.values()) == THREADS * calls
    tally.check(breaker)
    metrics = breaker.get_metrics()
    assert metrics["total_trips"] >= 5
    assert closes.counts["closed"] >= 5
    assert metrics["total_rejected"] > 0
    # No probe slot was lost or doubled along the way.
    assert count_probe_slots(breaker, clock) == config.half_open_max_calls


# -- (b) a thousand tasks against a half-open breaker ------------------------------


async def settle() -> None:
    """Let every ready task run until it blocks."""
    for _ in range(3):
        await asyncio.sleep(0)


class Probes:
    """A protected coroutine that waits for its dependency, and task bookkeeping."""

    def __init__(self, breaker: CircuitBreaker[..., Any]) -> None:
        self.recovered = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.tasks: list[asyncio.Task[str]] = []
        self.call = breaker(self.wait_for_dependency)

    async def wait_for_dependency(self) -> str:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.recovered.wait()
        finally:
            self.in_flight -= 1
        return "ok"

    def start(self, count: int) -> list[asyncio.Task[str]]:
        new = [asyncio.create_task(self.call()) for _ in range(count)]
        self.tasks += new
        return new

    def ended(self, kind: type[BaseException]) -> int:
        return sum(
            t.done() and not t.cancelled() and isinstance(t.exception(), kind)
            for t in self.tasks
        )

    def cancelled(self) -> int:
        return sum(t.cancelled() for t in self.tasks)


@asyncio_only
async def test_thousand_tasks_share_the_probe_slots() -> None:
    """Half-open, 1,000 tasks get only 3 probes in flight, even with cancellations."""
    clock = FakeClock()
    config = BreakerConfig(
        failure_threshold=1,
        success_threshold=3,
        recovery_timeout=10.0,
        half_open_max_calls=3,
    )
    breaker = CircuitBreaker("tasks", config, clock=clock)
    probes = Probes(breaker)
    breaker.trip()
    clock.advance(10.0)
    probes.start(1000)
    await settle()
    assert probes.in_flight == 3
    assert probes.ended(CircuitOpenError) == 997
    error = probes.tasks[-1].exception()
    assert isinstance(error, CircuitOpenError)
    assert (error.state, error.retry_after) == ("half_open", 0.0)

    rng = random.Random(20240611)  # noqa: S311 - a seeded test schedule
    for _ in range(30):
        running = [t for t in probes.tasks if not t.done()]
        stopped = rng.sample(running, rng.randint(0, len(running)))
        for task in stopped:
            task.cancel()
        new = probes.start(rng.randint(0, 40))
        never_started = rng.sample(new, rng.randint(0, len(new)))
        for task in never_started:
            task.cancel()
        await settle()
        # Cancelled probes gave their slots back, and new tasks took them.
        wanting = len(running) - len(stopped) + len(new) - len(never_started)
        assert probes.in_flight == min(3, wanting)
        assert breaker.state is CircuitState.HALF_OPEN

    # Top the probes up; then the dependency recovers: three successes close it.
    probes.start(3)
    await settle()
    assert probes.in_flight == 3
    probes.recovered.set()
    await asyncio.gather(*probes.tasks, return_exceptions=True)
    assert probes.max_in_flight == 3
    assert breaker.state is CircuitState.CLOSED
    metrics = breaker.get_metrics()
    assert metrics["total_calls"] == metrics["total_successes"] == 3
    assert metrics["total_rejected"] == probes.ended(CircuitOpenError)
    assert len(probes.tasks) == 3 + probes.cancelled() + metrics["total_rejected"]

    # Closed again: everybody passes.
    results = await asyncio.gather(*(probes.call() for _ in range(100)))
    assert results == ["ok"] * 100
    assert breaker.get_metrics()["total_calls"] == 103


@asyncio_only
async def test_failing_probe_reopens_and_slots_survive_cancellation() -> None:
    """A failed probe re-opens the circuit; later probe slots are all still free."""
    clock = FakeClock()
    config = BreakerConfig(
        failure_threshold=1, success_threshold=1, half_open_max_calls=3
    )
    breaker = CircuitBreaker("reopen", config, clock=clock)
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    @breaker
    async def probe() -> str:
        return await asyncio.shield(answer)

    breaker.trip()
    clock.advance(config.recovery_timeout)
    tasks = [asyncio.create_task(probe()) for _ in range(50)]
    await settle()
    waiting = [t for t in tasks if not t.done()]
    assert len(waiting) == 3
    waiting[0].cancel()
    answer.set_exception(ConnectionError("still down"))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, ConnectionError) for r in results) == 2
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 47
    assert breaker.state is CircuitState.OPEN
    assert breaker.get_metrics()["total_trips"] == 2  # trip() and the probe
    assert count_probe_slots(breaker, clock) == 3


# -- (c) with and async with blocks from many tasks and threads -------------------


def block_outcome(index: int, block: int) -> str:
    pattern = ("ok", "fail", "ok", "excluded", "ok", "abort", "ok")
    return pattern[(index + block) % len(pattern)]


async def async_blocks(
    breaker: CircuitBreaker[..., Any], tally: Tally, nested: Tally
) -> None:
    """Forty tasks, each running five ``async with`` blocks that interleave."""

    async def block(index: int, outcome: str) -> None:
        async with breaker:
            for _ in range(index % 4):
                await asyncio.sleep(0)
            if index % 3 == 0:
                with breaker:  # a nested block is a call of its own
                    await asyncio.sleep(0)
                nested.record("ok")
            act(outcome)

    async def one(index: int) -> None:
        for number in range(5):
            await tally.run_async(block, index, block_outcome(index, number))

    await asyncio.gather(*(one(i) for i in range(40)))


def sync_blocks(
    breaker: CircuitBreaker[..., Any], tally: Tally, nested: Tally, index: int
) -> None:
    """Two hundred ``with`` blocks in this thread, some with a nested block."""

    def block(number: int) -> None:
        with breaker:
            if number % 3 == 0:
                with breaker:  # a nested block is a call of its own
                    nested.record("ok")
            act(block_outcome(index, number))

    for number in range(200):
        tally.run(block, number)


def test_blocks_from_tasks_and_threads_count_once() -> None:
    """Concurrent ``with`` and ``async with`` blocks are each counted exactly once."""
    config = BreakerConfig(failure_threshold=10_000, excluded_exceptions=(KeyError,))
    breaker = CircuitBreaker("blocks", config, clock=FakeClock())
    tally = Tally()
    nested = Tally()

    def worker(index: int) -> None:
        if index % 2 == 0:
            sync_blocks(breaker, tally, nested, index)
        else:
            asyncio.run(async_blocks(breaker, tally, nested))

    run_threads(worker)

    inner = nested.counts["ok"]
    assert inner == 4 * 67 + 4 * 14 * 5
    seen = tally.counts
    assert sum(seen.values()) == 4 * 200 + 4 * 40 * 5
    assert seen["abort"] > 0
    metrics = breaker.get_metrics()
    assert (
        metrics["total_calls"] == seen["ok"] + seen["excluded"] + seen["fail"] + inner
    )
    assert metrics["total_successes"] == seen["ok"] + seen["excluded"] + inner
    assert metrics["total_failures"] == seen["fail"]
    assert metrics["total_rejected"] == 0
    assert breaker.state is CircuitState.CLOSED


def test_open_blocks_from_tasks_and_threads_are_rejected_once() -> None:
    """While open, every concurrent block is rejected once and its body never runs."""
    breaker = CircuitBreaker(
        "open-blocks", BreakerConfig(recovery_timeout=60.0), clock=FakeClock()
    )
    breaker.trip()
    tally = Tally()
    nested = Tally()

    def worker(index: int) -> None:
        if index % 2 == 0:
            sync_blocks(breaker, tally, nested, index)
        else:
            asyncio.run(async_blocks(breaker, tally, nested))

    run_threads(worker)

    assert dict(tally.counts) == {"rejected": 4 * 200 + 4 * 40 * 5}
    assert not nested.counts
    tally.check(breaker)


def test_block_whose_steps_run_in_fresh_contexts_counts_once() -> None:
    """A ``with`` block stepped in copies of the context (Starlette streaming) works."""
    # Starlette streams a sync generator through anyio.to_thread.run_sync,
    # which runs each next() in a fresh copy of the request's context.
    breaker = CircuitBreaker("stream", clock=FakeClock())

    def stream() -> Iterator[int]:
        with breaker:
            yield 1
            yield 2

    chunks = stream()
    received: list[int] = []
    while (chunk := contextvars.copy_context().run(next, chunks, None)) is not None:
        received.append(chunk)
    assert received == [1, 2]
    metrics = breaker.get_metrics()
    assert (metrics["total_calls"], metrics["total_successes"]) == (1, 1)


@asyncio_only
async def test_block_closed_by_another_task_frees_its_probe_slot() -> None:
    """A probe block entered in one task and closed in another gives its slot back."""
    clock = FakeClock()
    config = BreakerConfig(
        recovery_timeout=1.0, success_threshold=1, half_open_max_calls=1
    )
    breaker = CircuitBreaker("agen", config, clock=clock)

    async def stream() -> AsyncGenerator[int, None]:
        async with breaker:
            yield 1
            yield 2

    breaker.trip()
    clock.advance(1.0)
    chunks = stream()
    assert await asyncio.create_task(chunks.asend(None)) == 1  # the probe's slot
    with contextlib.suppress(RuntimeError):
        await asyncio.create_task(chunks.aclose())  # GeneratorExit: neither
    assert breaker.state is CircuitState.HALF_OPEN
    async with breaker:  # the slot is free again for the next probe
        pass
    assert breaker.get_metrics()["state"] == "closed"


# -- (d) wall-clock jumps ------------------------------------------------------------

DAY: Final = dt.timedelta(days=1)
EPOCH: Final = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


def test_time_machine_leaves_the_monotonic_clock_alone() -> None:
    """time-machine moves the wall clock but not time.monotonic (the assumption)."""
    before = time.monotonic()
    with time_machine.travel(EPOCH, tick=False) as traveller:
        traveller.shift(DAY)
        assert time.time() == (EPOCH + DAY).timestamp()
        during = time.monotonic()
    assert 0.0 <= during - before < 60.0


@pytest.mark.parametrize("jump", [DAY, -DAY], ids=["forward", "backward"])
def test_wall_clock_jump_does_not_move_an_open_breaker(jump: dt.timedelta) -> None:
    """A day's wall-clock jump neither half-opens nor stalls an open circuit."""
    breaker = CircuitBreaker("wall-open", BreakerConfig(recovery_timeout=3600.0))
    with time_machine.travel(EPOCH, tick=False) as traveller:
        breaker.trip()
        traveller.shift(jump)
        assert breaker.state is CircuitState.OPEN
        remaining = breaker.get_metrics()["time_until_recovery"]
        assert 3500.0 < remaining <= 3600.0
        with pytest.raises(CircuitOpenError) as rejected:
            breaker.call_sync(act, "ok")
        assert 3500.0 < rejected.value.retry_after <= 3600.0
        traveller.shift(-jump)
        assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize("jump", [DAY, -DAY], ids=["forward", "backward"])
def test_wall_clock_jump_does_not_move_a_closed_breaker(jump: dt.timedelta) -> None:
    """A wall-clock jump mid-call leaves a closed circuit closed with sane timings."""
    breaker = CircuitBreaker(
        "wall-closed", BreakerConfig(failure_threshold=2, recovery_timeout=0.0)
    )

    with time_machine.travel(EPOCH, tick=False) as traveller:

        def jumping(outcome: str) -> str:
            traveller.shift(jump)
            return act(outcome)

        with pytest.raises(ValueError):
            breaker.call_sync(jumping, "fail")
        assert breaker.call_sync(jumping, "ok") == "ok"
        with pytest.raises(ValueError):
            breaker.call_sync(jumping, "fail")
        assert breaker.state is CircuitState.CLOSED
        metrics = breaker.get_metrics()
        assert metrics["total_calls"] == 3
        assert metrics["total_trips"] == 0
        assert metrics["time_until_recovery"] == 0.0
        assert 0.0 <= metrics["avg_call_duration_ms"] < 60_000.0
