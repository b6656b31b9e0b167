"""
aiobreakers.redis against a real redis-server (see the redis_server fixture).

Each RedisStore here stands for one process of a fleet: it has its own
client, threads and process id, so two stores in one test are two
processes sharing a circuit. tests/test_redis_fleet.py runs real processes.

The server's clock cannot be faked: where a test needs server time to pass
(a permit expiring), it waits on the server itself, for milliseconds.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest
import redis

from aiobreakers import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    RateWindow,
    StateChanged,
    StoreDegraded,
    StoreRecovered,
)
from aiobreakers.redis import RedisStore
from aiobreakers.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from aiobreakers import Event
    from redis_server import RedisServer

# The async tests run on asyncio and trio (anyio's plugin).
pytestmark = pytest.mark.anyio

# Generous: a loaded CI machine; on loopback each takes milliseconds.
WAIT = 5.0


class Waiter:
    """An event sink a test can wait on, without polling."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def emit(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Event]], bool]) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.events), WAIT)

    def changes(self, name: str) -> list[tuple[str, str, str]]:
        return [
            (event.old.value, event.new.value, event.reason)
            for event in self.events
            if isinstance(event, StateChanged) and event.name == name
        ]

    def reached(self, name: str, state: str) -> bool:
        return self.wait_for(
            lambda events: any(
                isinstance(event, StateChanged)
                and event.name == name
                and event.new.value == state
                for event in events
            )
        )


def subscribed(client: redis.Redis, *patterns: str) -> redis.client.PubSub:
    """Subscribe to *patterns*, and return once the server has confirmed."""
    pubsub: redis.client.PubSub = client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.psubscribe(*patterns)
    confirmed = 0
    while confirmed < len(patterns):
        message = pubsub.get_message(timeout=WAIT)
        assert message is not None, "the server did not confirm a subscription"
        confirmed += message["type"] == "psubscribe"
    return pubsub


class Watcher:
    """
    Waits for a condition on what Redis holds, re-checked at every change.

    Subscribed to the stores' channel and to keyspace notifications of their
    keys, so it wakes whenever a store writes: no polling.
    """

    def __init__(self, client: redis.Redis) -> None:
        client.config_set("notify-keyspace-events", "KA")
        self._pubsub = subscribed(
            client, "aiobreakers:*", "__keyspace@0__:aiobreakers:*"
        )

    def until(self, condition: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + WAIT
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._pubsub.get_message(timeout=left)
        return True

    def close(self) -> None:
        self._pubsub.close()


@pytest.fixture
def stores(redis_server: RedisServer) -> Iterator[Callable[..., RedisStore]]:
    """Make stores ("processes") on the test's server; all closed at the end."""
    made: list[RedisStore] = []

    def make(url: str = redis_server.url, **options: Any) -> RedisStore:
        options.setdefault("namespace", "test")
        # Patient unless a test says otherwise: on a loaded machine, Redis
        # may take longer to answer than a breaker's settings wait (50 ms for
        # a claim, 0.25 s for a reply), and the store would degrade by
        # accident. Tests of a slow or frozen Redis set their own.
        options.setdefault("timeout", WAIT)
        options.setdefault("claim_timeout", WAIT)
        store = RedisStore.from_url(url, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client on the test's server, to look at what the store wrote."""
    plain = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield plain
    plain.close()


@pytest.fixture
def watch(client: redis.Redis) -> Iterator[Watcher]:
    watcher = Watcher(client)
    yield watcher
    watcher.close()


def fail() -> None:
    raise ConnectionError("down")


def trip_by_failures(breaker: CircuitBreaker[..., Any], failures: int) -> None:
    for _ in range(failures):
        with pytest.raises(ConnectionError):
            breaker.call_sync(fail)


def held(started: threading.Event, finish: threading.Event) -> Callable[[], bool]:
    """A call that says it started, then runs until *finish* is set."""

    def call() -> bool:
        started.set()
        return finish.wait(WAIT)

    return call


def server_wait(client: redis.Redis, seconds: float) -> None:
    """Let *seconds* pass on the server's clock, waiting on the server."""
    client.blpop(["aiobreakers-test:nothing"], timeout=seconds)


def state_of(client: redis.Redis, name: str, namespace: str = "test") -> dict[str, str]:
    raw = client.hgetall(f"aiobreakers:{{{namespace}:{name}}}:state")
    return {str(key): str(value) for key, value in raw.items()}


def half_open_pair(
    stores: Callable[..., RedisStore],
    name: str,
    config: BreakerConfig,
    waiter: Waiter,
    **options: Any,
) -> tuple[CircuitBreaker[..., Any], CircuitBreaker[..., Any]]:
    """
    Two processes' breakers of one circuit, made half-open by the first.

    Returns once the second (whose sink is *waiter*) has heard of it.
    """
    here = CircuitBreaker(name, config, store=stores(**options))
    there = CircuitBreaker(name, config, store=stores(**options), sink=waiter)
    # What BreakerRegistry.force does, for one of two breakers of one name.
    here._force(CircuitState.HALF_OPEN)
    assert waiter.reached(name, "half_open")
    return here, there


CONFIG = BreakerConfig(failure_threshold=2, recovery_timeout=30.0, success_threshold=1)


# -- sharing -------------------------------------------------------------------


def test_a_trip_in_one_process_opens_the_circuit_in_every_other(
    stores: Callable[..., RedisStore],
) -> None:
    waiter = Waiter()
    here = CircuitBreaker("payments", CONFIG, store=stores())
    there = CircuitBreaker("payments", CONFIG, store=stores(), sink=waiter)
    elsewhere = CircuitBreaker("payments", CONFIG, store=stores(namespace="other"))

    trip_by_failures(here, 2)

    assert waiter.reached("payments", "open")
    assert waiter.changes("payments") == [("closed", "open", "fleet")]
    with pytest.raises(CircuitOpenError) as rejected:
        there.call_sync(lambda: "never runs")
    assert 29.0 < rejected.value.retry_after <= 30.0
    assert there.get_metrics()["total_trips"] == 1
    # Another namespace shares nothing.
    assert elsewhere.call_sync(lambda: "runs") == "runs"


def test_trip_and_reset_are_shared(stores: Callable[..., RedisStore]) -> None:
    waiter = Waiter()
    here = CircuitBreaker("api", CONFIG, store=stores())
    there = CircuitBreaker("api", CONFIG, store=stores(), sink=waiter)

    here.trip()
    assert waiter.reached("api", "open")
    here.reset()
    assert waiter.reached("api", "closed")
    assert there.state is CircuitState.CLOSED
    assert waiter.changes("api") == [
        ("closed", "open", "fleet"),
        ("open", "closed", "fleet"),
    ]


def test_open_deadlines_use_the_servers_clock(
    stores: Callable[..., RedisStore],
) -> None:
    # Two processes whose clocks disagree by a day still agree on the time left.
    waiter = Waiter()
    ahead = FakeClock(start=86_400.0)
    behind = FakeClock(start=0.0)
    here = CircuitBreaker("skew", CONFIG, store=stores(), clock=ahead)
    there = CircuitBreaker("skew", CONFIG, store=stores(), clock=behind, sink=waiter)

    here.trip()
    assert waiter.reached("skew", "open")

    assert 29.0 < there.get_metrics()["time_until_recovery"] <= 30.0
    behind.advance(30.0)
    assert there.state is CircuitState.HALF_OPEN


def test_healthy_calls_and_rejections_send_no_command(
    stores: Callable[..., RedisStore], client: redis.Redis, watch: Watcher
) -> None:
    store = stores(resync_interval=60.0)
    breaker = CircuitBreaker("quiet", CONFIG, store=store)
    opener = CircuitBreaker("quiet-open", CONFIG, store=store)
    opener.trip()
    assert store.flush(WAIT)

    def commands() -> int:
        stats = client.info("commandstats")
        return sum(entry["calls"] for entry in stats.values())

    before = commands()
    for _ in range(10_000):
        breaker.call_sync(lambda: None)
    for _ in range(1_000):
        with pytest.raises(CircuitOpenError):
            opener.call_sync(lambda: None)
    after = commands()
    # The INFO that reads the counts is the one command in between.
    assert after - before == 1


# -- probing ---------------------------------------------------------------------


def test_probes_are_limited_across_the_fleet(stores: Callable[..., RedisStore]) -> None:
    config = BreakerConfig(
        failure_threshold=1, half_open_max_calls=1, success_threshold=1
    )
    waiter = Waiter()
    here, there = half_open_pair(stores, "probe", config, waiter)

    started, finish = threading.Event(), threading.Event()

    def slow_probe() -> str:
        started.set()
        finish.wait(WAIT)
        return "probed"

    results: list[str] = []
    prober = threading.Thread(target=lambda: results.append(here.call_sync(slow_probe)))
    prober.start()
    assert started.wait(WAIT)
    # The fleet's one permit is taken: the other process may not probe too.
    with pytest.raises(CircuitOpenError) as rejected:
        there.call_sync(lambda: "second probe")
    assert rejected.value.state == "half_open"

    finish.set()
    prober.join(WAIT)
    assert results == ["probed"]
    # The probe's success closes the circuit everywhere.
    assert waiter.reached("probe", "closed")
    assert there.call_sync(lambda: "closed again") == "closed again"


def test_success_threshold_counts_probes_of_every_process(
    stores: Callable[..., RedisStore], client: redis.Redis, watch: Watcher
) -> None:
    config = BreakerConfig(
        failure_threshold=1, half_open_max_calls=1, success_threshold=2
    )
    waiter = Waiter()
    here = CircuitBreaker("pair", config, store=stores(), sink=waiter)
    there = CircuitBreaker("pair", config, store=stores(), sink=waiter)
    here._force(CircuitState.HALF_OPEN)
    assert waiter.wait_for(lambda _: there.state is CircuitState.HALF_OPEN)

    assert here.call_sync(lambda: 1) == 1
    assert here.state is CircuitState.HALF_OPEN  # one success of two
    # The fleet counts it and takes back its permit.
    assert watch.until(lambda: state_of(client, "pair").get("k") == "1")
    assert there.call_sync(lambda: 2) == 2
    assert waiter.wait_for(
        lambda events: (
            sum(
                isinstance(event, StateChanged) and event.new is CircuitState.CLOSED
                for event in events
            )
            == 2
        )
    )


def test_a_failed_probe_reopens_everywhere(stores: Callable[..., RedisStore]) -> None:
    config = BreakerConfig(
        failure_threshold=1,
        recovery_timeout=10.0,
        recovery_multiplier=2.0,
        max_recovery_timeout=100.0,
    )
    waiter = Waiter()
    here, there = half_open_pair(stores, "reopen", config, waiter)

    with pytest.raises(ConnectionError):
        here.call_sync(fail)

    assert waiter.wait_for(lambda _: there.state is CircuitState.OPEN)
    # The fleet grew the recovery timeout, as one breaker would.
    assert 19.0 < there.get_metrics()["time_until_recovery"] <= 20.0


def test_a_permit_expires_when_its_prober_dies(
    stores: Callable[..., RedisStore], client: redis.Redis, proxy: Proxy
) -> None:
    config = BreakerConfig(failure_threshold=1, half_open_max_calls=1)
    waiter = Waiter()
    here = CircuitBreaker("dies", config, store=stores(url=proxy.url, permit_ttl=0.05))
    there = CircuitBreaker("dies", config, store=stores(permit_ttl=0.05), sink=waiter)
    here._force(CircuitState.HALF_OPEN)
    assert waiter.reached("dies", "half_open")

    started = threading.Event()

    def probe_then_die() -> None:
        started.set()
        proxy.cut()  # the process is gone: nobody gives its permit back
        threading.Event().wait()  # hangs for good (a daemon thread)

    threading.Thread(target=lambda: here.call_sync(probe_then_die), daemon=True).start()
    assert started.wait(WAIT)
    with pytest.raises(CircuitOpenError):
        there.call_sync(lambda: None)

    server_wait(client, 0.06)
    assert there.call_sync(lambda: "probed") == "probed"


def test_closing_gives_back_the_permits_of_probes_in_flight(
    stores: Callable[..., RedisStore],
) -> None:
    config = BreakerConfig(failure_threshold=1, half_open_max_calls=1)
    waiter = Waiter()
    leaving = stores(permit_ttl=60.0)
    here = CircuitBreaker("leaving", config, store=leaving)
    there = CircuitBreaker("leaving", config, store=stores(), sink=waiter)
    here._force(CircuitState.HALF_OPEN)
    assert waiter.reached("leaving", "half_open")

    started, finish = threading.Event(), threading.Event()
    results: list[str] = []

    def probe() -> str:
        started.set()
        assert finish.wait(WAIT)
        return "late"

    prober = threading.Thread(target=lambda: results.append(here.call_sync(probe)))
    prober.start()
    assert started.wait(WAIT)
    with pytest.raises(CircuitOpenError):
        there.call_sync(lambda: None)  # the only permit is taken

    leaving.close(WAIT)  # a rolling deploy stops this process mid-probe
    # Another process probes at once, not after the permit's 60 s.
    newcomer_store = stores()
    newcomer = CircuitBreaker("leaving", config, store=newcomer_store)
    assert newcomer_store.flush(WAIT)  # it has read the circuit: half-open
    assert newcomer.state is CircuitState.HALF_OPEN
    assert newcomer.call_sync(lambda: "probed") == "probed"
    finish.set()
    prober.join(WAIT)
    assert results == ["late"]  # the late probe still ends well, in process


def probe_on(breaker: CircuitBreaker[..., Any], go: threading.Barrier) -> None:
    go.wait(WAIT)
    for _ in range(5):
        with contextlib.suppress(CircuitOpenError):  # refused while closing
            breaker.call_sync(lambda: None)


def test_closing_mid_claims_leaves_no_permit_taken(
    stores: Callable[..., RedisStore], client: redis.Redis
) -> None:
    # Claims sent just before close() are granted while it runs: it must
    # wait for them, or their permits stay taken for permit_ttl.
    config = BreakerConfig(
        failure_threshold=1, half_open_max_calls=50, success_threshold=1000
    )
    for round_ in range(5):
        name = f"mid-claims-{round_}"
        leaving = stores(permit_ttl=60.0)
        here = CircuitBreaker(name, config, store=leaving)
        waiter = Waiter()
        there = CircuitBreaker(name, config, store=stores(), sink=waiter)
        here._force(CircuitState.HALF_OPEN)
        assert waiter.reached(name, "half_open")
        go = threading.Barrier(9)
        probers = [threading.Thread(target=probe_on, args=(here, go)) for _ in range(8)]
        for prober in probers:
            prober.start()
        go.wait(WAIT)
        leaving.close(WAIT)
        for prober in probers:
            prober.join(WAIT)
        assert client.zcard(f"aiobreakers:{{test:{name}}}:permits") == 0
        assert there.state is CircuitState.HALF_OPEN


def test_a_half_open_call_while_closing_is_refused_not_shared(
    stores: Callable[..., RedisStore],
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = BreakerConfig(
        failure_threshold=1, half_open_max_calls=2, success_threshold=1
    )
    waiter = Waiter()
    leaving = stores()
    here = CircuitBreaker("closing-call", config, store=leaving)
    there = CircuitBreaker("closing-call", config, store=stores(), sink=waiter)
    here._force(CircuitState.HALF_OPEN)
    assert waiter.reached("closing-call", "half_open")
    claiming, claimed = threading.Event(), threading.Event()
    monkeypatch.setattr(
        leaving,
        "_run",
        held_once(
            leaving._run, claiming, claimed, when=lambda script, *_: script == "claim"
        ),
    )
    first = threading.Thread(target=here.call_sync, args=(lambda: None,))
    first.start()
    assert claiming.wait(WAIT)  # a claim in flight, for close() to wait on
    closing = threading.Thread(target=leaving.close, args=(WAIT,))
    closing.start()
    deadline = time.monotonic() + WAIT
    while not leaving._closing:  # close() has begun, and waits for the claim
        assert time.monotonic() < deadline
        threading.Event().wait(0.001)
    # No permit can be had now: run alone, its success would be written by
    # close()'s last flush, and close the fleet's circuit.
    with pytest.raises(CircuitOpenError):
        here.call_sync(lambda: None)
    claimed.set()
    first.join(WAIT)
    closing.join(WAIT)
    assert state_of(client, "closing-call")["s"] == "open"  # still half-open
    assert there.state is CircuitState.HALF_OPEN


async def test_an_async_probe_never_blocks_the_event_loop(
    redis_server: RedisServer,
    stores: Callable[..., RedisStore],
    client: redis.Redis,
    watch: Watcher,
) -> None:
    config = BreakerConfig(failure_threshold=1)
    # Without its claim_timeout, the claim would wait for the reply timeout.
    store = stores(claim_timeout=0.2, timeout=2 * WAIT)
    breaker = CircuitBreaker("loop", config, store=store)
    breaker._force(CircuitState.HALF_OPEN)
    assert watch.until(lambda: bool(state_of(client, "loop")))

    redis_server.freeze()  # the claim now waits its whole timeout
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async def probe() -> str:
        return "probed"

    started = time.monotonic()
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(ticker)
            assert await breaker.call_async(probe) == "probed"
            tasks.cancel_scope.cancel()
    finally:
        elapsed = time.monotonic() - started
        redis_server.thaw()
    assert elapsed < WAIT
    assert ticks > 100  # the loop ran other tasks while the claim waited


# -- windows and quorum -----------------------------------------------------------


WINDOW = BreakerConfig(
    trip=RateWindow(seconds=60, minimum_calls=30, failure_rate=0.5),
    recovery_timeout=30.0,
)


def test_a_time_window_is_decided_on_the_fleets_combined_counts(
    stores: Callable[..., RedisStore],
) -> None:
    waiter = Waiter()
    fleet = [
        CircuitBreaker("window", WINDOW, store=stores(flush_interval=0.01), sink=waiter)
        for _ in range(4)
    ]
    # Ten calls each, six failed: no process reaches 30 calls alone.
    for breaker in fleet:
        for _ in range(4):
            breaker.call_sync(lambda: None)
        trip_by_failures(breaker, 6)
    # Every process hears of it (the one that sent the deciding counts too).
    assert waiter.wait_for(
        lambda _: (
            [change[1:] for change in waiter.changes("window")]
            == [("open", "fleet")] * 4
        )
    )
    assert all(breaker.state is CircuitState.OPEN for breaker in fleet)


def test_one_sick_process_cannot_open_the_circuit_for_a_quorum(
    stores: Callable[..., RedisStore], client: redis.Redis, watch: Watcher
) -> None:
    waiter = Waiter()
    sick = CircuitBreaker(
        "quorum", WINDOW, store=stores(quorum=2, flush_interval=0.01), sink=waiter
    )
    well = CircuitBreaker(
        "quorum", WINDOW, store=stores(quorum=2, flush_interval=0.01), sink=waiter
    )
    trip_by_failures(sick, 40)
    window = "aiobreakers:{test:quorum}:window"
    assert watch.until(lambda: _window_calls(client, window) == 40)
    # 40 calls, all failed, but from one process of the two a quorum needs.
    assert sick.state is CircuitState.CLOSED
    assert well.state is CircuitState.CLOSED

    trip_by_failures(well, 1)
    assert waiter.wait_for(
        lambda _: sick.state is CircuitState.OPEN and well.state is CircuitState.OPEN
    )


def _window_calls(client: redis.Redis, key: str) -> int:
    counts = client.hgetall(key)
    return sum(int(value) for field, value in counts.items() if str(field)[0] == "c")


# -- Redis away ----------------------------------------------------------------------


def test_a_stopped_server_degrades_the_store_and_never_the_calls(
    redis_server: RedisServer, stores: Callable[..., RedisStore]
) -> None:
    waiter = Waiter()
    store = stores(sink=waiter)
    breaker = CircuitBreaker("outage", CONFIG, store=store)
    other = CircuitBreaker("outage", CONFIG, store=stores(), sink=waiter)
    assert breaker.call_sync(lambda: 1) == 1

    redis_server.kill()
    assert waiter.wait_for(
        lambda events: any(isinstance(event, StoreDegraded) for event in events)
    )
    assert not store.healthy
    # Local speed, local state: it trips alone.
    assert breaker.call_sync(lambda: 2) == 2
    trip_by_failures(breaker, 2)
    assert breaker.state is CircuitState.OPEN

    redis_server.start()
    assert waiter.wait_for(
        lambda events: any(isinstance(event, StoreRecovered) for event in events)
    )
    # Its trip reaches the fleet once Redis is back.
    assert waiter.wait_for(lambda _: other.state is CircuitState.OPEN)
    recovered = [event for event in waiter.events if isinstance(event, StoreRecovered)]
    assert recovered[0].outage > 0.0


def test_a_frozen_server_costs_a_probe_at_most_the_claim_timeout(
    redis_server: RedisServer,
    stores: Callable[..., RedisStore],
    client: redis.Redis,
    watch: Watcher,
) -> None:
    # Without its claim_timeout, the probe would wait for the reply timeout.
    store = stores(claim_timeout=0.05, timeout=2 * WAIT)
    breaker = CircuitBreaker("frozen", CONFIG, store=store)
    breaker._force(CircuitState.HALF_OPEN)
    assert watch.until(lambda: bool(state_of(client, "frozen")))

    redis_server.freeze()
    try:
        started = time.monotonic()
        assert breaker.call_sync(lambda: "probed alone") == "probed alone"
        elapsed = time.monotonic() - started
        for _ in range(1000):
            assert breaker.call_sync(lambda: None) is None
    finally:
        redis_server.thaw()
    assert elapsed < WAIT


@pytest.mark.parametrize("loss", ["flushall", "eviction"])
def test_lost_keys_of_an_open_circuit_are_written_back(
    stores: Callable[..., RedisStore], client: redis.Redis, watch: Watcher, loss: str
) -> None:
    waiter = Waiter()
    here = CircuitBreaker("lost", CONFIG, store=stores(resync_interval=0.02))
    there = CircuitBreaker("lost", CONFIG, store=stores(), sink=waiter)
    here.trip()
    assert waiter.reached("lost", "open")

    if loss == "flushall":
        client.flushall()
    else:  # what eviction, or a key's own expiry, does: the keys just go
        client.delete(*client.keys("aiobreakers:{test:lost}:*"))
    # A process that knows the circuit is open writes it back.
    assert watch.until(lambda: state_of(client, "lost").get("s") == "open")
    with pytest.raises(CircuitOpenError):
        there.call_sync(lambda: None)
    assert 29.0 < here.get_metrics()["time_until_recovery"] <= 30.0
    here.reset()
    assert waiter.reached("lost", "closed")


def test_the_background_work_restarts_in_a_forked_child(
    stores: Callable[..., RedisStore], client: redis.Redis, fork_children: Any
) -> None:
    waiter = Waiter()
    store = stores()
    breaker = CircuitBreaker("forked", CONFIG, store=store)
    parent_view = CircuitBreaker("forked", CONFIG, store=stores(), sink=waiter)

    def child() -> bool:
        listener = subscribed(client, "aiobreakers:test")
        breaker.trip()  # the child's own threads write it
        message = listener.get_message(timeout=WAIT)
        return message is not None and "forked" in str(message["data"])

    assert fork_children(child) == [0]
    assert waiter.wait_for(lambda _: parent_view.state is CircuitState.OPEN)


class Proxy:
    """
    A TCP proxy in front of the server, to cut one process off from it.

    While cut, it drops every connection and refuses new ones at once: a
    network partition of the processes that connect through it.
    """

    def __init__(self, target: int) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open = True
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self._listener.accept()
            except OSError:  # closed
                return
            if not self._open:
                near.close()
                continue
            try:
                far = socket.create_connection(("127.0.0.1", self._target))
            except OSError:
                near.close()
                continue
            with self._lock:
                self._pairs.append((near, far))
            for source, sink in ((near, far), (far, near)):
                threading.Thread(
                    target=self._pump, args=(source, sink), daemon=True
                ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for each in (source, sink):
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()

    def cut(self) -> None:
        self._open = False
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for each in pair:
                with contextlib.suppress(OSError):
                    each.shutdown(socket.SHUT_RDWR)

    def mend(self) -> None:
        self._open = True

    def close(self) -> None:
        self.cut()
        self._listener.close()


def cut(proxy: Proxy, waiter: Waiter) -> None:
    """Cut off the processes behind *proxy*; return once *waiter* hears of it."""
    proxy.cut()
    assert waiter.wait_for(
        lambda events: any(isinstance(event, StoreDegraded) for event in events)
    )


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[Proxy]:
    made = Proxy(redis_server.port)
    yield made
    made.close()


def test_a_cut_off_process_keeps_its_windows_verdict_to_itself(
    stores: Callable[..., RedisStore], proxy: Proxy
) -> None:
    config = BreakerConfig(
        trip=RateWindow(seconds=60, minimum_calls=5, failure_rate=0.5),
        recovery_timeout=30.0,
    )
    waiter = Waiter()
    cut_off = CircuitBreaker(
        "partition", config, store=stores(url=proxy.url, sink=waiter), sink=waiter
    )
    other = Waiter()
    rest = CircuitBreaker("partition", config, store=stores(), sink=other)

    cut(proxy, waiter)
    trip_by_failures(cut_off, 5)  # its own window decides, alone
    assert cut_off.state is CircuitState.OPEN

    proxy.mend()
    # Back: the fleet's window (which never saw those failures) rules.
    assert waiter.wait_for(
        lambda _: waiter.changes("partition")[-1:] == [("open", "closed", "fleet")]
    )
    assert cut_off.state.value == "closed"  # (read again: it changed)
    assert rest.state is CircuitState.CLOSED
    assert other.changes("partition") == []


def test_a_late_write_cannot_undo_a_newer_state(
    stores: Callable[..., RedisStore], proxy: Proxy
) -> None:
    waiter = Waiter()
    late = CircuitBreaker(
        "fenced", CONFIG, store=stores(url=proxy.url, sink=waiter), sink=waiter
    )
    rest_store = stores()
    rest = CircuitBreaker("fenced", CONFIG, store=rest_store)

    cut(proxy, waiter)
    trip_by_failures(late, 2)  # decided alone, on the epoch it last saw
    assert late.state is CircuitState.OPEN
    # Meanwhile the fleet moves on: it trips and recovers.
    rest.trip()
    rest.reset()
    assert rest_store.flush(WAIT)

    proxy.mend()
    # The late trip is refused; the late process takes the newer state.
    assert waiter.wait_for(
        lambda _: waiter.changes("fenced")[-1:] == [("open", "closed", "fleet")]
    )
    assert rest_store.flush(WAIT)
    assert rest.state is CircuitState.CLOSED
    assert rest.call_sync(lambda: "still closed") == "still closed"


# -- settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"namespace": "has space"}, "namespace 'has space' cannot be shared"),
        ({"namespace": "{tag}"}, "namespace '{tag}' cannot be shared"),
        ({"namespace": ""}, "namespace '' cannot be shared"),
        # A colon ends the namespace in every key: "shop" and "eu:pay" must
        # not be "shop:eu" and "pay".
        ({"namespace": "shop:eu"}, "namespace 'shop:eu' cannot be shared"),
        ({"quorum": 0}, "quorum must be >= 1"),
        ({"claim_timeout": 0.0}, "claim_timeout must be between"),
        ({"claim_timeout": math.inf}, "claim_timeout must be between"),
        ({"permit_ttl": -1.0}, "permit_ttl must be between"),
        ({"resync_interval": 3600.0}, "resync_interval must be between"),
        ({"flush_interval": 0.0}, "flush_interval must be between"),
        ({"state_ttl": 0.5}, "state_ttl must be between"),
    ],
)
def test_bad_settings_are_named(options: dict[str, Any], message: str) -> None:
    options.setdefault("namespace", "ok")
    with pytest.raises(ValueError, match=message.replace("{", r"\{")):
        RedisStore(redis.Redis(port=1), **options)


def test_types_are_checked() -> None:
    with pytest.raises(TypeError, match=r"client must be a sync redis\.Redis"):
        RedisStore("redis://localhost", namespace="ok")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="quorum must be an int"):
        RedisStore(redis.Redis(port=1), namespace="ok", quorum=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="store must be a store"):
        CircuitBreaker("x", store=object())  # type: ignore[call-overload]


def test_breaker_names_must_fit_in_keys(stores: Callable[..., RedisStore]) -> None:
    with pytest.raises(ValueError, match="breaker name 'a b' cannot be shared"):
        CircuitBreaker("a b", store=stores())


def test_quorum_needs_a_time_window(stores: Callable[..., RedisStore]) -> None:
    with pytest.raises(
        ValueError, match=r"quorum=2\) needs breakers that trip on a time"
    ):
        CircuitBreaker("q", CONFIG, store=stores(quorum=2))
    count_window = BreakerConfig(trip=RateWindow(calls=10, failure_rate=0.5))
    with pytest.raises(ValueError, match="time window"):
        CircuitBreaker("q", count_window, store=stores(quorum=2))


def test_from_url_gives_a_client_fit_for_a_breaker(
    redis_server: RedisServer,
) -> None:
    with RedisStore.from_url(redis_server.url, namespace="ok", timeout=0.1) as store:
        settings = store._client.connection_pool.connection_kwargs
        assert settings["socket_timeout"] == 0.1
        assert settings["socket_connect_timeout"] == 0.1
        assert settings["retry"].get_retries() == 0
        assert store.healthy
    assert not store.healthy
    with pytest.raises(RuntimeError, match="is closed"):
        CircuitBreaker("late", store=store)


def test_keys_of_one_breaker_share_a_cluster_hash_tag(
    stores: Callable[..., RedisStore], client: redis.Redis, watch: Watcher
) -> None:
    config = BreakerConfig(
        trip=RateWindow(seconds=10, minimum_calls=1, failure_rate=1.0),
        half_open_max_calls=1,
    )
    store = stores(flush_interval=0.01)
    breaker = CircuitBreaker("svc.users/get", config, store=store)
    seen: set[str] = set()

    def keys_now() -> set[str]:
        seen.update(str(key) for key in client.keys("aiobreakers:*"))
        return seen

    breaker.call_sync(lambda: None)  # the window's counts
    assert watch.until(lambda: any(key.endswith(":window") for key in keys_now()))
    breaker.trip()  # the state
    assert watch.until(lambda: any(key.endswith(":state") for key in keys_now()))
    breaker._force(CircuitState.HALF_OPEN)
    assert store.flush(WAIT)
    started, finish = threading.Event(), threading.Event()
    prober = threading.Thread(target=breaker.call_sync, args=(held(started, finish),))
    prober.start()  # a probe holds a permit
    assert started.wait(WAIT)
    assert watch.until(lambda: any(key.endswith(":permits") for key in keys_now()))
    finish.set()
    prober.join(WAIT)
    # The state, the permits, the window, and the configuration it rests on.
    assert len(seen) == 4
    assert all(key.startswith("aiobreakers:{test:svc.users/get}:") for key in seen)


# -- what review found ------------------------------------------------------------


def test_a_circuit_made_anew_after_flushall_is_newer_than_any_before(
    stores: Callable[..., RedisStore], client: redis.Redis
) -> None:
    waiter = Waiter()
    # They never read the circuit again: they hear of the new one only.
    old_store, older_store = stores(resync_interval=60), stores(resync_interval=60)
    old = CircuitBreaker("anew", CONFIG, store=old_store, sink=waiter)
    older = CircuitBreaker("anew", CONFIG, store=older_store, sink=waiter)
    for _ in range(3):  # a history: the epoch has moved on
        old.trip()
        assert old_store.flush(WAIT)
        old.reset()
        assert old_store.flush(WAIT)
    assert older_store.flush(WAIT)

    client.flushall()
    newcomer = CircuitBreaker("anew", CONFIG, store=stores())
    newcomer.trip()
    # The processes that knew the old epochs take the new circuit all the same.
    assert waiter.wait_for(
        lambda _: old.state is CircuitState.OPEN and older.state is CircuitState.OPEN
    )


def test_a_probes_outcome_waits_out_a_paused_server(
    stores: Callable[..., RedisStore], client: redis.Redis
) -> None:
    config = BreakerConfig(
        failure_threshold=1, half_open_max_calls=1, success_threshold=1
    )
    waiter = Waiter()
    here, there = half_open_pair(stores, "paused", config, waiter, timeout=0.25)

    def probe() -> str:
        client.client_pause(600)  # every other client waits 0.6 s
        return "probed"

    assert here.call_sync(probe) == "probed"
    # Written once Redis answers again: the fleet closes on it.
    assert waiter.reached("paused", "closed")
    assert there.state is CircuitState.CLOSED


def test_a_resync_reads_every_circuit_in_one_round_trip(
    stores: Callable[..., RedisStore], client: redis.Redis
) -> None:
    store = stores(resync_interval=60.0)
    fleet = [CircuitBreaker(f"resync-{n}", CONFIG, store=store) for n in range(3)]
    assert store.flush(WAIT)

    def sent() -> Counter[str]:
        # Commands run inside a script count too: leave those out.
        stats = client.info("commandstats")
        return Counter(
            {
                name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
                for name in ("evalsha", "script|exists", "script|load")
            }
        )

    # At least the passes asked for; the listener may ask for one more, to
    # catch up on what it missed while (re)subscribing.
    before = sent()
    for _ in range(5):
        assert store.flush(WAIT)
    counts = sent() - before
    # Three reads a pass, in one pipeline: no SCRIPT EXISTS before each.
    assert set(counts) == {"evalsha"}
    assert counts["evalsha"] >= 15
    assert counts["evalsha"] % 3 == 0

    client.script_flush()  # the server forgets the scripts (as on a restart)
    before = sent()
    assert store.flush(WAIT)
    counts = sent() - before
    # Refused for want of the script, loaded once, and read again.
    assert counts["script|load"] == 1
    assert counts["script|exists"] == 0
    assert counts["evalsha"] >= 6
    assert all(breaker.state is CircuitState.CLOSED for breaker in fleet)


def test_refused_claims_do_not_each_ask_redis(
    stores: Callable[..., RedisStore], client: redis.Redis
) -> None:
    config = BreakerConfig(failure_threshold=1, half_open_max_calls=1)
    here, there = half_open_pair(stores, "busy", config, Waiter())
    started, finish = threading.Event(), threading.Event()
    prober = threading.Thread(target=here.call_sync, args=(held(started, finish),))
    prober.start()
    assert started.wait(WAIT)

    def claims() -> int:
        stats = client.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

    before = claims()
    for _ in range(1_000):
        with pytest.raises(CircuitOpenError):
            there.call_sync(lambda: None)
    asked = claims() - before
    finish.set()
    prober.join(WAIT)
    # One claim, then refused here for a moment (0.1 s) without asking; a
    # resync or two may run meanwhile.
    assert asked <= 5


def test_reset_forgets_the_fleets_window(stores: Callable[..., RedisStore]) -> None:
    config = BreakerConfig(
        trip=RateWindow(seconds=60, minimum_calls=10, failure_rate=0.5)
    )
    here_store, there_store = stores(flush_interval=0.01), stores(flush_interval=0.01)
    here = CircuitBreaker("forget", config, store=here_store)
    there = CircuitBreaker("forget", config, store=there_store)
    trip_by_failures(here, 5)
    assert here_store.flush(WAIT)

    here.reset()
    assert here_store.flush(WAIT)  # written, and heard of
    assert there_store.flush(WAIT)
    for _ in range(5):
        there.call_sync(lambda: None)
    assert there_store.flush(WAIT)
    # Without the reset: 5 failures in 10 calls, a rate of 0.5: open.
    assert here.state is CircuitState.CLOSED
    assert there.state is CircuitState.CLOSED
    assert here.get_metrics()["total_trips"] == 0


async def test_closing_the_store_never_cancels_a_waiting_caller(
    redis_server: RedisServer, stores: Callable[..., RedisStore]
) -> None:
    store = stores(claim_timeout=WAIT, timeout=0.25)
    config = BreakerConfig(half_open_max_calls=10)
    breaker = CircuitBreaker("closing", config, store=store)
    breaker._force(CircuitState.HALF_OPEN)
    assert store.flush(WAIT)
    results: list[str] = []

    async def probe() -> str:
        return "probed"

    async def call() -> None:
        results.append(await breaker.call_async(probe))

    redis_server.freeze()
    try:
        async with anyio.create_task_group() as tasks:
            # More claims than the store has threads for: some wait in its
            # queue, which close() empties.
            for _ in range(6):
                tasks.start_soon(call)
            for _ in range(3):
                await anyio.lowlevel.checkpoint()  # let each reach its claim
            store.close(timeout=0.0)
    finally:
        redis_server.thaw()
    assert results == ["probed"] * 6


def test_a_trio_claim_needs_none_of_trios_worker_threads(
    stores: Callable[..., RedisStore],
) -> None:
    import trio  # noqa: PLC0415 - a trio-only test
    import trio.testing  # noqa: PLC0415

    store = stores(claim_timeout=10.0)  # the most: longer than fail_after(WAIT)
    breaker = CircuitBreaker("trio", BreakerConfig(), store=store)
    breaker._force(CircuitState.HALF_OPEN)
    assert store.flush(WAIT)
    release = threading.Event()

    async def probe() -> str:
        return "probed"

    async def occupy() -> None:
        await trio.to_thread.run_sync(release.wait)

    async def main() -> None:
        limiter = trio.to_thread.current_default_thread_limiter()
        async with trio.open_nursery() as nursery:
            for _ in range(int(limiter.total_tokens)):  # every worker, busy
                nursery.start_soon(occupy)
            await trio.testing.wait_all_tasks_blocked()
            try:
                # A claim queued for a worker would wait for release, which
                # comes only after the call: fail, not hang, if it does.
                with trio.fail_after(WAIT):
                    assert await breaker.call_async(probe) == "probed"
            finally:
                release.set()

    trio.run(main)


def test_a_circuit_shared_with_another_configuration_is_named(
    stores: Callable[..., RedisStore], caplog: pytest.LogCaptureFixture
) -> None:
    first, second, third = stores(), stores(), stores()
    fleet = [CircuitBreaker("mixed", CONFIG, store=first)]
    assert first.flush(WAIT)
    with caplog.at_level(logging.WARNING, logger="aiobreakers"):
        fleet.append(CircuitBreaker("mixed", CONFIG, store=second))  # no word
        assert second.flush(WAIT)
        assert caplog.messages == []
        other = BreakerConfig(failure_threshold=9, success_threshold=3)
        fleet.append(CircuitBreaker("mixed", other, store=third))
        assert third.flush(WAIT)
    [warning] = caplog.messages
    assert "breaker 'mixed' of Redis store 'test' shares its circuit" in warning
    assert "threshold=2" in warning
    assert "threshold=9" in warning
    assert "success_threshold=3" in warning


def test_counts_from_an_outage_are_not_the_fleets(
    redis_server: RedisServer, stores: Callable[..., RedisStore]
) -> None:
    config = BreakerConfig(
        trip=RateWindow(seconds=60, minimum_calls=5, failure_rate=0.5)
    )
    waiter = Waiter()
    here_store = stores(sink=waiter, flush_interval=0.01)
    here = CircuitBreaker("outage-counts", config, store=here_store)
    there_store = stores(flush_interval=0.01)
    there = CircuitBreaker("outage-counts", config, store=there_store)

    redis_server.kill()
    assert waiter.wait_for(
        lambda events: any(isinstance(event, StoreDegraded) for event in events)
    )
    trip_by_failures(here, 3)  # judged here alone, below minimum_calls
    redis_server.start()
    assert waiter.wait_for(
        lambda events: any(isinstance(event, StoreRecovered) for event in events)
    )
    assert here_store.flush(WAIT)
    assert there_store.flush(WAIT)

    trip_by_failures(there, 2)
    assert there_store.flush(WAIT)
    assert here_store.flush(WAIT)
    # With the outage's 3, the fleet would hold 5 failures: open.
    assert there.state is CircuitState.CLOSED
    assert here.state is CircuitState.CLOSED


@contextlib.contextmanager
def refusing_writes(client: redis.Redis, refusal: str) -> Iterator[None]:
    """Make the server answer reads and refuse every write, for a block."""
    if refusal == "out of memory":
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
    else:  # as on a primary turned replica by a failover
        client.replicaof("127.0.0.1", "1")  # nothing there: it stays one
    try:
        yield
    finally:
        if refusal == "out of memory":
            client.config_set("maxmemory", 0)
        else:
            client.replicaof("no", "one")


REFUSALS = ["out of memory", "read-only"]
BUSY_WINDOW = BreakerConfig(
    trip=RateWindow(seconds=60, minimum_calls=1000, failure_rate=0.5)
)


@pytest.mark.parametrize("refusal", REFUSALS)
@pytest.mark.parametrize("refused", ["a trip", "a window's counts"])
def test_a_redis_that_refuses_writes_is_one_outage(
    stores: Callable[..., RedisStore],
    client: redis.Redis,
    refusal: str,
    refused: str,
) -> None:
    waiter = Waiter()
    store = stores(sink=waiter)
    here = CircuitBreaker("refused", CONFIG, store=store)
    busy = CircuitBreaker("busy", BUSY_WINDOW, store=store)
    assert store.flush(WAIT)

    with refusing_writes(client, refusal):
        if refused == "a trip":
            here.trip()  # written again at every pass
        # Each pass reads the circuits (which works), then fails to write;
        # counts that fail to go are not sent again.
        for _ in range(5):
            for _ in range(10):
                busy.call_sync(lambda: None)
            assert not store.flush(WAIT)
        assert [type(event) for event in waiter.events] == [StoreDegraded]
    assert store.flush(WAIT)
    assert [type(event) for event in waiter.events] == [StoreDegraded, StoreRecovered]
    if refused == "a trip":
        assert state_of(client, "refused")["s"] == "open"  # written once it could be


@pytest.mark.parametrize("refusal", REFUSALS)
@pytest.mark.parametrize("keys", ["kept", "lost"])
def test_a_window_verdict_made_alone_holds_while_redis_refuses_writes(
    stores: Callable[..., RedisStore], client: redis.Redis, refusal: str, keys: str
) -> None:
    config = BreakerConfig(
        trip=RateWindow(seconds=60, minimum_calls=5, failure_rate=0.5),
        recovery_timeout=30.0,
    )
    store = stores()
    changes = Waiter()
    breaker = CircuitBreaker("alone", config, store=store, sink=changes)
    other = CircuitBreaker("other", CONFIG, store=store)
    breaker.trip()
    breaker.reset()  # the fleet's state, closed, is in Redis
    assert store.flush(WAIT)
    if keys == "lost":
        client.flushall()  # closed all the same, and nothing to write back

    with refusing_writes(client, refusal):
        other.trip()  # something to write: the store finds out
        assert not store.flush(WAIT)
        trip_by_failures(breaker, 5)  # judged here alone, the store degraded
        assert breaker.state is CircuitState.OPEN
        for _ in range(3):
            assert not store.flush(WAIT)  # each pass reads the fleet's state
            assert breaker.state is CircuitState.OPEN
    # Shared again: the fleet's window decides, and it saw none of those.
    assert store.flush(WAIT)
    assert changes.wait_for(
        lambda events: any(
            isinstance(event, StateChanged)
            and event.new is CircuitState.CLOSED
            and event.reason == "fleet"
            for event in events
        )
    )


def test_an_outage_logs_each_kind_of_failure_once(
    redis_server: RedisServer,
    stores: Callable[..., RedisStore],
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = stores()
    breaker = CircuitBreaker("logged", CONFIG, store=store)
    assert store.flush(WAIT)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)
    with caplog.at_level(logging.WARNING, logger="aiobreakers"):
        breaker.trip()
        for _ in range(3):
            assert not store.flush(WAIT)
        redis_server.kill()  # and now it does not answer at all
        # Waits its whole second (the listener is gone for good): passes
        # every resync_interval meanwhile, each failing the same way.
        assert not store.flush(1.0)
    first, then = (record.getMessage() for record in caplog.records)
    assert "degraded, breakers decide alone" in first
    assert "OutOfMemoryError" in first
    assert "still degraded, now by" in then
    assert "ConnectionError" in then


def test_a_claim_answered_without_a_write_is_no_recovery(
    stores: Callable[..., RedisStore],
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    waiter = Waiter()
    store = stores(sink=waiter)
    here = CircuitBreaker("claim-read", CONFIG, store=store, clock=clock)
    other = CircuitBreaker("claim-other", CONFIG, store=store)
    here.trip()  # open for 30 s in Redis, by the server's clock
    assert store.flush(WAIT)
    claiming, claimed = threading.Event(), threading.Event()
    monkeypatch.setattr(
        store,
        "_run",
        held_once(
            store._run, claiming, claimed, when=lambda script, *_: script == "claim"
        ),
    )
    clock.advance(CONFIG.recovery_timeout + 1.0)  # half-open here, on its clock
    refused: list[CircuitOpenError] = []

    def call() -> None:
        try:
            here.call_sync(lambda: None)
        except CircuitOpenError as error:
            refused.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    assert claiming.wait(WAIT)  # its claim sent while the store was healthy
    with refusing_writes(client, "read-only"):
        other.trip()
        assert not store.flush(WAIT)  # degraded meanwhile
        claimed.set()
        caller.join(WAIT)
        # Refused (the fleet's circuit is still open), which Redis could
        # answer without a write: no sign that it takes writes again.
        assert len(refused) == 1
        assert not store.healthy
        assert [type(event) for event in waiter.events] == [StoreDegraded]


def test_a_store_needs_only_its_namespaces_keys_and_channel(
    redis_server: RedisServer, stores: Callable[..., RedisStore], client: redis.Redis
) -> None:
    client.acl_setuser(
        "fleet",
        enabled=True,
        passwords=["+secret"],
        keys=["aiobreakers:{test:*"],
        channels=["aiobreakers:test"],
        categories=["+@all"],
    )
    url = f"redis://fleet:secret@127.0.0.1:{redis_server.port}"
    waiter = Waiter()
    store = stores(url=url, sink=waiter)
    here = CircuitBreaker("acl", CONFIG, store=store)
    there = CircuitBreaker("acl", CONFIG, store=stores(url=url), sink=waiter)
    here.trip()
    assert waiter.reached("acl", "open")
    assert there.state is CircuitState.OPEN
    with refusing_writes(client, "out of memory"):
        here.reset()
        assert not store.flush(WAIT)
    assert store.flush(WAIT)  # its check of writes is within its keys too
    assert waiter.reached("acl", "closed")
    assert [
        type(event) for event in waiter.events if not isinstance(event, StateChanged)
    ] == [
        StoreDegraded,
        StoreRecovered,
    ]


def test_hooks_hear_of_a_breakers_changes_in_the_order_made(
    stores: Callable[..., RedisStore],
) -> None:
    tripper = stores()
    slow_a = CircuitBreaker("a", CONFIG, store=tripper)
    slow_b = CircuitBreaker("b", CONFIG, store=tripper)
    listening = stores()
    a = CircuitBreaker("a", CONFIG, store=listening)
    heard = Waiter()
    b = CircuitBreaker("b", CONFIG, store=listening, sink=heard)
    release = threading.Event()
    a.on_open(lambda _: release.wait(WAIT))  # holds up the store's announcer

    slow_a.trip()
    slow_b.trip()
    assert tripper.flush(WAIT)
    assert listening.flush(WAIT)  # b has taken the fleet's open; no one told yet
    assert b.state is CircuitState.OPEN
    b.reset()  # a change of this process's own, after the fleet's
    release.set()
    assert heard.wait_for(lambda _: len(heard.changes("b")) == 2)
    assert heard.changes("b") == [
        ("closed", "open", "fleet"),
        ("open", "closed", "reset"),
    ]


# -- a change made on a state taken from the fleet ----------------------------------


class Pair:
    """Two processes' breakers of one circuit; *here* has a FakeClock and a sink."""

    def __init__(
        self, stores: Callable[..., RedisStore], client: redis.Redis, name: str
    ) -> None:
        self.client = client
        self.clock = FakeClock()
        self.waiter = Waiter()
        self.store = stores()
        self.here = CircuitBreaker(
            name, CONFIG, store=self.store, clock=self.clock, sink=self.waiter
        )
        self.other = stores()
        self.there = CircuitBreaker(name, CONFIG, store=self.other)

    def agree_on_closed(self) -> None:
        """Both on the fleet's closed circuit, of an epoch above 0."""
        self.there.trip()
        self.there.reset()
        assert self.other.flush(WAIT)
        epoch = int(state_of(self.client, self.here.name)["e"])
        link: Any = self.here._link
        # The listener's too, so that no message of these is still to come.
        assert self.waiter.wait_for(lambda _: link.epoch == epoch)
        assert self.here.state is CircuitState.CLOSED

    def fleet_resets(self) -> None:
        """Another process resets; here's listener takes it."""
        self.there.reset()
        assert self.other.flush(WAIT)
        name = self.here.name
        assert self.waiter.wait_for(
            lambda _: self.waiter.changes(name)[-1:] == [("open", "closed", "fleet")]
        )

    def agree_on_open(self) -> None:
        """Here and in Redis: open; and still once here's own deadline passed."""
        here, client, name = self.here, self.client, self.here.name
        assert self.store.flush(WAIT)
        assert (here.state.value, state_of(client, name)["s"]) == ("open", "open")
        # The server's open spell has 30 s to go: half-open here (on its own
        # clock) is the fleet's open state past its deadline, unlike the
        # storm's worker, half-open on a circuit closed in Redis.
        self.clock.advance(CONFIG.recovery_timeout + 1.0)
        assert self.store.flush(WAIT)
        assert (here.state.value, state_of(client, name)["s"]) == ("half_open", "open")


def held_once(
    call: Callable[..., Any],
    reached: threading.Event,
    release: threading.Event,
    when: Callable[..., bool] = lambda *_: True,
) -> Callable[..., Any]:
    """
    Hold up the writer at *call*: its first call that *when* picks sets
    *reached*, then waits for *release*.
    """

    def held(*args: Any) -> Any:
        if not reached.is_set() and when(*args):
            reached.set()
            release.wait(WAIT)
        return call(*args)

    return held


def test_a_change_made_while_a_refused_proposal_is_in_flight_is_shared(
    stores: Callable[..., RedisStore],
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The fleet storm's rare disagreement (a worker half-open, Redis closed):
    # a process proposes a change; the fleet moves on meanwhile (another
    # process resets), so the proposal is refused; the listener takes the
    # fleet's new state, and on it the process decides a change of its own
    # before the writer settles the refusal. That change must reach the
    # fleet, on the epoch it was decided on, not die with the refused one.
    pair = Pair(stores, client, "inflight")
    pair.agree_on_closed()
    proposing, proposed = threading.Event(), threading.Event()
    settling, settled = threading.Event(), threading.Event()
    monkeypatch.setattr(
        pair.store,
        "_run",
        held_once(
            pair.store._run,
            proposing,
            proposed,
            when=lambda script, *_: script == "propose",
        ),
    )
    monkeypatch.setattr(
        pair.store, "_settle", held_once(RedisStore._settle, settling, settled)
    )

    trip_by_failures(pair.here, 2)  # opens here: its proposal is in flight
    assert proposing.wait(WAIT)
    pair.fleet_resets()  # so the proposal will be refused
    proposed.set()
    assert settling.wait(WAIT)  # refused, not yet settled
    trip_by_failures(pair.here, 2)  # opens here again, on the fleet's closed state
    settled.set()

    pair.agree_on_open()


def test_a_change_made_after_the_fleet_moved_does_not_inherit_a_queued_epoch(
    stores: Callable[..., RedisStore],
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same with the first proposal still queued when the fleet's newer
    # state is taken (the writer held up: after an outage, say, the listener
    # may be back first): the change decided on that state must not take the
    # queued one's older epoch, to be refused with it.
    pair = Pair(stores, client, "queued")
    pair.agree_on_closed()
    writing, written = threading.Event(), threading.Event()
    monkeypatch.setattr(
        pair.store,
        "_write_proposal",
        held_once(pair.store._write_proposal, writing, written),
    )

    trip_by_failures(pair.here, 2)  # opens here: its proposal is queued
    assert writing.wait(WAIT)
    pair.fleet_resets()
    trip_by_failures(pair.here, 2)  # opens here again, on the fleet's closed state
    written.set()

    pair.agree_on_open()
