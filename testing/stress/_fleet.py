"""
A fleet of real processes sharing circuits through a real Redis, while it fails.

Each worker (``_fleet_worker.py``, spawned) has its own ``RedisStore`` and
breakers of the same three names, and calls them from threads and an event
loop with a random mix of failures, trips and resets, which open circuits
and send them through half-open probes. Meanwhile the storm kills and
restarts the server, freezes and thaws it (``SIGSTOP``), flushes it, and
kills a worker inside a probe (then starts another). A thread of the storm
samples the probe permits in Redis all along. Once the faults stop, the
workers stop calling and flush, and the storm checks that they agree with
Redis, that a trip and a reset from any worker reach all the others within a
second, that calls stayed at local speed, and that every worker closes its
store without a thread left and exits cleanly.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import multiprocessing
import os
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ._core import Background, Log, Mode, Tally, num, rounds, storm

if TYPE_CHECKING:
    from collections.abc import Iterator
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    import redis

    from redis_server import RedisServer

# Seconds a spawned worker may take to start (imports, on a loaded machine),
# and to answer any command: past it, the storm fails as hung.
WAIT: Final = 60.0
# How long after a fault ends calls still count as made during it: until
# every store has tried Redis again (resync_interval, 0.25 s) and recovered.
TAIL: Final = 0.5
# The probe permits' lifetime in the storm: a dead prober's permit lapses
# within the storm's short mode.
PERMIT_TTL: Final = 1.0
# A call that never waits on Redis takes microseconds; measured from the
# caller, it also waits for the GIL behind the worker's other threads and
# for a core behind the other processes. The bound on the p99 of closed
# calls and of open rejections is this plus the worker's own scheduling
# delay (p99 of 1 ms naps, measured in the same run): far below what one
# wait on Redis would add (claim_timeout, 50 ms; from_url's socket timeout,
# 250 ms, which a frozen server makes every request wait in full).
LOCAL: Final = 0.02
CLAIM_TIMEOUT: Final = 0.05  # RedisStore's default, which the workers keep
# The permit was granted a moment before the victim's probe began (the reply
# reached it, its thread ran): the permit may lapse this much sooner than
# permit_ttl after that.
LAPSE_MARGIN: Final = 0.05
# Workers killed inside a probe, at most, until one held a fleet permit.
VICTIMS: Final = 3
# A trip or a reset in one worker reaches every other worker within this.
CONVERGED: Final = 1.0
# Past the end of an outage, every worker has emitted StoreRecovered by then.
RECOVERED: Final = 2.0

# Live permits (scored by expiry, past now on the server's clock) and each
# circuit's hash, read at one moment: [now, then per circuit permits, epoch,
# state, open deadline].
SAMPLE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {now}
for i = 1, #KEYS, 2 do
  out[#out + 1] = redis.call('ZCOUNT', KEYS[i + 1], '(' .. now, '+inf')
  local v = redis.call('HMGET', KEYS[i], 'e', 's', 'u')
  out[#out + 1] = v[1] or '0'
  out[#out + 1] = v[2] or 'closed'
  out[#out + 1] = v[3] or '0'
end
return out
"""


def _missing() -> str | None:
    """Say what the storm needs and lacks; ``None`` when nothing."""
    from redis_server import find_redis_server  # noqa: PLC0415 - see fleet()

    if find_redis_server() is None:
        return "redis-server is not installed (Debian: apt-get install redis-server)"
    if importlib.util.find_spec("redis") is None:
        return "redis-py is not installed (pip install 'aiobreakers[redis]')"
    return None


@dataclass(frozen=True)
class Sizes:
    """How long the storm lasts."""

    workers: int
    seconds: float  # faults go on until then (at least one round of each)
    calm: tuple[float, float]  # seconds between faults, at random
    outage: tuple[float, float]  # how long Redis stays killed or frozen
    rounds: int  # trip-and-reset rounds at the end


@dataclass(frozen=True)
class View:
    """One circuit in Redis, as the storm reads it with a plain client."""

    state: str
    epoch: int
    permits: int


# -- the workers ------------------------------------------------------------------


class Member:
    """The storm's handle on one worker process."""

    def __init__(self, process: BaseProcess, connection: Connection) -> None:
        self.process = process
        self.connection = connection
        self.started = time.monotonic()
        self.killed: float | None = None
        self.probing: list[tuple[str, float]] = []

    def _next(self, timeout: float) -> tuple[Any, ...] | None:
        if not self.connection.poll(timeout):
            return None
        message: tuple[Any, ...] = self.connection.recv()
        return message

    def ask(self, command: str, argument: object = None) -> Any:
        """Send a command; return its reply (a probe's message meanwhile is kept)."""
        self.connection.send((command, argument))
        return self.reply()

    def reply(self) -> Any:
        for _ in rounds():
            message = self._next(WAIT)
            if message is None:
                raise RuntimeError(f"{self.process.name} said nothing for {WAIT} s")
            if message[0] == "reply":
                return message[1]
            self.probing.append(message[1])
        raise RuntimeError(f"{self.process.name} never replied")

    def await_probing(self, timeout: float) -> tuple[str, float] | None:
        """
        The breaker this worker probes forever, and since when.

        ``None``: it did not get to probe in time.
        """
        if not self.probing:
            message = self._next(timeout)
            if message is not None:
                self.probing.append(message[1])
        return self.probing[0] if self.probing else None

    def kill(self) -> None:
        self.killed = time.monotonic()
        self.process.kill()
        self.process.join(WAIT)


class Fleet:
    """The worker processes, spawned."""

    def __init__(self, url: str, seed: int) -> None:
        self.url = url
        self.seed = seed
        self.members: list[Member] = []
        self._context = multiprocessing.get_context("spawn")

    def spawn(self, count: int) -> list[Member]:
        from ._fleet_worker import Settings, serve  # noqa: PLC0415 - see fleet()

        started = []
        for _ in range(count):
            index = len(self.members)
            ours, theirs = self._context.Pipe()
            settings = Settings(self.url, index, self.seed + index, PERMIT_TTL)
            process = self._context.Process(
                target=serve,
                args=(settings, theirs),
                name=f"stress-fleet-worker-{index}",
                daemon=True,
            )
            process.start()
            theirs.close()
            member = Member(process, ours)
            self.members.append(member)
            started.append(member)
        for member in started:
            if member.reply() != "ready":
                raise RuntimeError(f"{member.process.name} did not start")
            member.started = time.monotonic()
        return started

    def alive(self) -> list[Member]:
        return [member for member in self.members if member.killed is None]

    def ask_all(self, command: str, argument: object = None) -> list[Any]:
        members = self.alive()
        for member in members:
            member.connection.send((command, argument))
        return [member.reply() for member in members]

    def kill_all(self) -> None:
        for member in self.members:
            if member.process.is_alive():
                member.kill()


# -- what the storm watches in Redis ----------------------------------------------


def _keys(names: tuple[str, ...], namespace: str) -> list[str]:
    keys = []
    for name in names:
        tag = f"aiobreakers:{{{namespace}:{name}}}"
        keys += [f"{tag}:state", f"{tag}:permits"]
    return keys


class Reader:
    """Reads the fleet's circuits with a plain client (short timeouts)."""

    def __init__(self, url: str) -> None:
        import redis  # noqa: PLC0415 - see fleet()

        from ._fleet_worker import NAMES, NAMESPACE  # noqa: PLC0415 - see fleet()

        self.names = NAMES
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=0.1, socket_connect_timeout=0.1
        )
        self._sample = self.client.register_script(SAMPLE)
        self._keys = _keys(NAMES, NAMESPACE)
        self.channel = f"aiobreakers:{NAMESPACE}"

    def read(self) -> dict[str, View]:
        """Every circuit now; raises what the client raises."""
        raw = self._sample(keys=self._keys)
        now = int(raw[0])
        views = {}
        for index, name in enumerate(self.names):
            permits, epoch, state, until = raw[1 + 4 * index : 5 + 4 * index]
            shown = state.decode() if isinstance(state, bytes) else str(state)
            if shown == "open" and now >= int(until):
                shown = "half_open"
            views[name] = View(shown, int(epoch), int(permits))
        return views

    def close(self) -> None:
        self.client.close()


class Sampler(Background):
    """Samples the live probe permits and the epochs, as often as Redis answers."""

    what = "permit sampler"

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.samples = 0
        self.unanswered = 0
        self.most: Counter[str] = Counter()
        # Per circuit: (time.monotonic(), epoch) whenever the epoch changed.
        self.epochs: dict[str, list[tuple[float, int]]] = {
            name: [] for name in reader.names
        }
        super().__init__()

    def _run(self) -> None:
        for _ in rounds():
            if self._stop.wait(0.002):
                return
            try:
                views = self.reader.read()
            except Exception:  # Redis down or frozen: on purpose
                self.unanswered += 1
                self._stop.wait(0.05)
                continue
            now = time.monotonic()
            self.samples += 1
            for name, view in views.items():
                self.most[name] = max(self.most[name], view.permits)
                epochs = self.epochs[name]
                if not epochs or epochs[-1][1] != view.epoch:
                    epochs.append((now, view.epoch))

    def changed_after(self, name: str, moment: float) -> float | None:
        """Seconds from *moment* until the circuit's epoch next changed."""
        for at, _ in self.epochs[name]:
            if at > moment:
                return at - moment
        return None


class Channel(Background):
    """Counts the changes the fleet publishes, by reason (reconnects after faults)."""

    what = "channel listener"

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.reasons: Counter[str] = Counter()
        super().__init__()

    def _run(self) -> None:
        for _ in rounds():
            if self._stop.is_set():
                return
            pubsub = self.reader.client.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self.reader.channel)
                for _ in rounds():
                    if self._stop.is_set():
                        return
                    message = pubsub.get_message(timeout=0.05)
                    if message is not None and message["type"] == "message":
                        data = message["data"]
                        text = data.decode() if isinstance(data, bytes) else data
                        self.reasons[text.rsplit(" ", 1)[-1]] += 1
            except Exception:  # Redis down or frozen: on purpose
                self._stop.wait(0.05)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()


# -- the faults -------------------------------------------------------------------


@dataclass
class Record:
    """What the storm did, and when (``time.monotonic()``)."""

    outages: list[tuple[str, float, float]] = field(default_factory=list)
    flushes: int = 0
    # Each prober killed: the circuit, its live permits then, when its probe
    # began, when it was killed.
    probers: list[tuple[str, int | None, float, float]] = field(default_factory=list)
    unprobed: int = 0  # victims that never got to probe in time
    unheld: int = 0  # prober faults where no victim held a permit
    quiet: float = 0.0  # when the callers were told to stop


class Faults:
    """Injects the storm's faults into the server and the fleet."""

    def __init__(
        self,
        server: RedisServer,
        fleet: Fleet,
        reader: Reader,
        sizes: Sizes,
        chooser: random.Random,
    ) -> None:
        self.server = server
        self.fleet = fleet
        self.reader = reader
        self.sizes = sizes
        self.chooser = chooser
        self.record = Record()

    @contextlib.contextmanager
    def fault(self) -> Iterator[None]:
        """Tell the workers a fault is on, until TAIL after the block."""
        self.fleet.ask_all("phase", True)  # noqa: FBT003 - the command's argument
        try:
            yield
        finally:
            time.sleep(TAIL)
            self.fleet.ask_all("phase", False)  # noqa: FBT003

    def run(self, kind: str) -> None:
        getattr(self, kind)()

    def _outage(self, kind: str, begin: str, end: str) -> None:
        with self.fault():
            start = time.monotonic()
            getattr(self.server, begin)()
            time.sleep(self.chooser.uniform(*self.sizes.outage))
            getattr(self.server, end)()
            self.record.outages.append((kind, start, time.monotonic()))

    def kill(self) -> None:
        """SIGKILL the server, and start it again on its port, empty."""
        self._outage("kill", "kill", "start")

    def freeze(self) -> None:
        """SIGSTOP the server, and SIGCONT it."""
        self._outage("freeze", "freeze", "thaw")

    def flushall(self) -> None:
        with self.fault():
            self.reader.client.flushall()
            self.record.flushes += 1

    def prober(self) -> None:
        """
        Kill a worker inside a probe; start another in its place.

        A victim probes without a permit when its claim times out (the store
        is then degraded: a loaded machine): then another victim tries, up to
        VICTIMS of them.
        """
        with self.fault():
            for _ in range(VICTIMS):
                if self._kill_a_prober() == 1:
                    break
            else:
                self.record.unheld += 1

    def _kill_a_prober(self) -> int | None:
        """Kill a worker probing "solo": the circuit's live permits then."""
        victim = self.chooser.choice(self.fleet.alive())
        # Nobody else calls "solo" until the victim is dead, so that the
        # victim's probe takes the circuit's one permit (the others would
        # win the race at the end of the open spell).
        self.fleet.ask_all("spare_solo", True)  # noqa: FBT003 - an argument
        victim.ask("hang")
        probing = victim.await_probing(10.0)
        permits = None
        if probing is not None:
            with contextlib.suppress(Exception):
                permits = self.reader.read()[probing[0]].permits
        victim.kill()
        self.fleet.ask_all("spare_solo", False)  # noqa: FBT003
        if probing is None:
            self.record.unprobed += 1
        else:
            name, since = probing
            killed = victim.killed or 0.0
            self.record.probers.append((name, permits, since, killed))
        for member in self.fleet.spawn(1):
            member.ask("start")
        return permits


# -- the storm --------------------------------------------------------------------

KINDS: Final = ("kill", "freeze", "flushall", "prober")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _ms(seconds: float) -> str:
    if abs(seconds) < 0.001:
        return f"{seconds * 1e6:.0f} us"
    return f"{seconds * 1000:.1f} ms"


@storm(
    "fleet",
    "worker processes sharing circuits through Redis, killed, frozen and flushed",
)
def fleet(mode: Mode, log: Log) -> None:
    # redis-py, redis-server and the worker are needed here only: the other
    # storms run on the standard library alone.
    missing = _missing()
    if missing is not None:
        if os.environ.get("CI"):
            log.expect(
                "redis-server and redis-py are there (CI must run it)",
                held=False,
                detail=missing,
            )
        else:
            log.figure(f"SKIPPED: {missing}; with CI set this fails instead")
        return
    from redis_server import RedisServer  # noqa: PLC0415

    sizes = mode.pick(
        Sizes(workers=3, seconds=0.0, calm=(0.5, 0.7), outage=(0.8, 0.8), rounds=3),
        Sizes(workers=4, seconds=150.0, calm=(0.5, 3.0), outage=(0.4, 2.5), rounds=20),
    )
    seed = random.SystemRandom().randrange(2**32)
    chooser = random.Random(seed)  # noqa: S311 - a schedule, printed with its seed
    server = RedisServer()
    server.start()
    fleet_ = Fleet(server.url, seed)
    reader = Reader(server.url)
    try:
        _run(log, sizes, seed, chooser, server, fleet_, reader)
    finally:
        fleet_.kill_all()
        reader.close()
        server.close()


def _run(
    log: Log,
    sizes: Sizes,
    seed: int,
    chooser: random.Random,
    server: RedisServer,
    fleet: Fleet,
    reader: Reader,
) -> None:
    began = time.monotonic()
    fleet.spawn(sizes.workers)
    log.figure(
        f"{sizes.workers} workers spawned in {time.monotonic() - began:.1f} s"
        f" (seed {seed}); redis-server on port {server.port}"
    )
    faults = Faults(server, fleet, reader, sizes, chooser)
    with Sampler(reader) as sampler, Channel(reader) as channel:
        fleet.ask_all("start")
        log.section("the storm: calls in every worker while Redis fails")
        start = time.monotonic()
        ran: Counter[str] = Counter()
        for _ in rounds():
            kinds = list(KINDS)
            chooser.shuffle(kinds)
            for kind in kinds:
                time.sleep(chooser.uniform(*sizes.calm))
                faults.run(kind)
                ran[kind] += 1
            if time.monotonic() - start >= sizes.seconds:
                break
        # Calls go on until the last dead prober's permit has lapsed, and a
        # little longer: what the permit held back moves the circuit then.
        last = max((killed for *_, killed in faults.record.probers), default=0.0)
        time.sleep(max(0.0, last + PERMIT_TTL + 0.5 - time.monotonic()))
        stormed = time.monotonic() - start
        faults.record.quiet = time.monotonic()
        quiet = fleet.ask_all("quiet")
        log.figure(
            f"{stormed:.1f} s of faults: {ran['kill']} kills and {ran['freeze']}"
            f" freezes of Redis, {ran['flushall']} FLUSHALLs,"
            f" {ran['prober']} workers killed mid-probe (and replaced)"
        )
        log.equal(
            "every worker ends healthy: flush() done and store.healthy",
            [tuple(each) for each in quiet if tuple(each) != (True, True)],
            [],
        )
        _check_agreement(log, fleet, reader)
        _check_convergence(log, fleet, reader, sizes, chooser)
    reports = fleet.ask_all("stop")
    _check_calls(log, reports)
    _check_outages(log, fleet, reports, faults.record)
    _check_permits(log, sampler, channel, faults.record, reports)
    _check_exits(log, fleet, reports)


def _check_agreement(log: Log, fleet: Fleet, reader: Reader) -> None:
    """Once the callers stopped, every worker holds the fleet's state."""
    log.section("after the faults: callers stopped, every store flushed")
    from ._fleet_worker import CONFIG  # noqa: PLC0415

    # No sleep waits for a write here (flush() does): this one lets every
    # open deadline pass, so that a state no longer moves with the clock.
    time.sleep(2 * CONFIG.recovery_timeout)
    flushed = fleet.ask_all("flush")
    views = reader.read()
    states = fleet.ask_all("states")
    fleet_states = {name: view.state for name, view in views.items()}
    log.figure(f"the fleet's circuits in Redis: {fleet_states}")
    log.equal(
        "every worker's flush() finished with Redis answering", flushed.count(False), 0
    )
    log.equal(
        "every worker's state of every breaker is the fleet's state in Redis",
        [each for each in states if each != fleet_states],
        [],
    )


def _check_convergence(
    log: Log, fleet: Fleet, reader: Reader, sizes: Sizes, chooser: random.Random
) -> None:
    """A trip and a reset from any worker reach every other one within a second."""
    members = fleet.alive()
    start = members[0].ask("act", "reset")
    for member in members[1:]:
        member.ask("await", ("closed", start, 0.0))
    fleet.ask_all("flush")
    latencies: dict[str, list[float]] = {"open": [], "closed": []}
    missed = 0
    for _ in range(sizes.rounds):
        for action, state in (("trip", "open"), ("reset", "closed")):
            actor = chooser.choice(members)
            start = actor.ask("act", action)
            for member in members:
                if member is actor:
                    continue
                heard = member.ask("await", (state, start, CONVERGED))
                for seconds in heard.values():
                    if seconds is None:
                        missed += 1
                    else:
                        latencies[state].append(seconds)
    for state, values in latencies.items():
        if values:
            log.figure(
                f"{'a trip' if state == 'open' else 'a reset'} from one worker to"
                f" each other's breakers ({len(values)}): p50"
                f" {_ms(statistics.median(values))}, p99"
                f" {_ms(_percentile(values, 0.99))}, max {_ms(max(values))}"
            )
    log.equal(
        f"every trip and reset reached every other worker within {CONVERGED:g} s",
        missed,
        0,
    )
    fleet.ask_all("flush")
    views = reader.read()
    log.equal(
        "after the last reset, Redis and every worker say closed",
        [{n: v.state for n, v in views.items()}, *fleet.ask_all("states")],
        [dict.fromkeys(views, "closed")] * (1 + len(members)),
    )


def _check_calls(log: Log, reports: list[dict[str, Any]]) -> None:
    log.section("the calls")
    seen = Tally()
    for report in reports:
        seen.add(report["tally"])
    trips = sum(report["trips"] for report in reports)
    resets = sum(report["resets"] for report in reports)
    log.figure(
        f"{num(seen.made)} calls by the workers that finished: {num(seen.ok)} ok,"
        f" {num(seen.fail)} failed, {num(seen.rejected)} rejected;"
        f" {num(trips)} trip() and {num(resets)} reset() calls"
    )
    log.equal(
        "no Redis error reached a call: each returned, raised its own error or"
        " CircuitOpenError",
        sorted(set(seen.unexpected)),
        [],
    )
    _check_latencies(log, reports)


def _check_latencies(log: Log, reports: list[dict[str, Any]]) -> None:
    worst: dict[str, list[float]] = {}
    over: list[str] = []
    for index, report in enumerate(reports):
        delay_p99, _ = report["lateness"]
        bound = LOCAL + delay_p99
        for kind, (count, _, p99, longest) in report["latencies"].items():
            figures = worst.setdefault(kind, [0, 0.0, 0.0, 0.0])
            figures[0] += count
            figures[2] = max(figures[2], p99)
            figures[3] = max(figures[3], longest)
            limit = bound + (CLAIM_TIMEOUT if kind == "half_open" else 0.0)
            if count and p99 > limit:
                over.append(f"worker {index} {kind}: p99 {_ms(p99)} > {_ms(limit)}")
    for kind, (count, _, p99, longest) in worst.items():
        log.figure(
            f"{kind.replace('_', ' ')} calls: {num(int(count))}, p99 {_ms(p99)}"
            f" (worst worker), longest {_ms(longest)}"
        )
    delays = [report["lateness"] for report in reports]
    lags = [report["loop_lag"] for report in reports]
    log.figure(
        f"scheduling delay of the workers (1 ms naps): p99 up to"
        f" {_ms(max(d[0] for d in delays))}, longest {_ms(max(d[1] for d in delays))};"
        f" event loop lag p99 up to {_ms(max(lag[0] for lag in lags))}, longest"
        f" {_ms(max(lag[1] for lag in lags))}"
    )
    for kind in ("closed_fault", "closed_calm", "open_fault"):
        log.at_least(
            f"some {kind.replace('_', ' ')} calls were timed", worst[kind][0], 1
        )
    log.equal(
        f"closed calls and open rejections at local speed, during faults too: p99"
        f" <= {_ms(LOCAL)} + the worker's scheduling delay p99 (half-open calls:"
        f" + claim_timeout)",
        over,
        [],
    )


def _check_outages(
    log: Log, fleet: Fleet, reports: list[dict[str, Any]], record: Record
) -> None:
    """Each outage: StoreDegraded in every worker during it, StoreRecovered after."""
    log.section("outages seen by the stores")
    finished = [m for m in fleet.members if m.killed is None]
    events: list[tuple[Member, list[tuple[str, float, str]]]] = [
        (member, report["store_events"])
        for member, report in zip(finished, reports, strict=True)
    ]
    began = fleet.members[0].started
    noticed: dict[str, list[float]] = {"kill": [], "freeze": []}
    back: list[float] = []
    wrong: list[str] = []
    expected: set[tuple[str, float]] = set()
    for kind, start, end in record.outages:
        for member, seen in events:
            if member.started > start:
                continue
            degraded = [
                at
                for what, at, _ in seen
                if what == "degraded" and start <= at <= end + TAIL
            ]
            before = [what for what, at, _ in seen if at < start]
            if before and before[-1] == "degraded":
                degraded = [start]  # degraded already (a claim too slow)
            recovered = [
                at
                for what, at, _ in seen
                if what == "recovered" and end <= at <= end + RECOVERED
            ]
            if not degraded or not recovered:
                wrong.append(
                    f"{member.process.name}, {kind} at {start - began:.1f} s:"
                    f" degraded {bool(degraded)}, recovered {bool(recovered)}"
                )
                continue
            if degraded[0] > start:
                noticed[kind].append(degraded[0] - start)
            back.append(recovered[0] - end)
            expected |= {("degraded", degraded[0]), ("recovered", recovered[0])}
    for kind, values in noticed.items():
        if values:
            log.figure(
                f"StoreDegraded after Redis was"
                f" {'killed' if kind == 'kill' else 'frozen'}:"
                f" median {_ms(statistics.median(values))}, max {_ms(max(values))}"
            )
    if back:
        log.figure(
            f"StoreRecovered after Redis answered again: median"
            f" {_ms(statistics.median(back))}, max {_ms(max(back))}"
        )
    others = [
        (what, error)
        for _, seen in events
        for what, at, error in seen
        if (what, at) not in expected
    ]
    log.figure(
        f"store events outside the outages checked: {len(others)}"
        + (f" (first: {others[0][0]} {others[0][1]})" if others else "")
    )
    log.equal(
        "in every worker, StoreDegraded during each outage and StoreRecovered"
        f" within {RECOVERED:g} s after it",
        wrong,
        [],
    )


def _degraded_spells(reports: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Each worker's spells degraded: StoreDegraded to StoreRecovered (or the end)."""
    spells: list[tuple[float, float]] = []
    for report in reports:
        down: float | None = None
        for what, at, _ in report["store_events"]:
            if what == "degraded" and down is None:
                down = at
            elif what == "recovered" and down is not None:
                spells.append((down, at))
                down = None
        if down is not None:
            spells.append((down, math.inf))
    return spells


def _check_permits(
    log: Log,
    sampler: Sampler,
    channel: Channel,
    record: Record,
    reports: list[dict[str, Any]],
) -> None:
    log.section("probes and permits")
    from ._fleet_worker import CONFIGS  # noqa: PLC0415

    log.figure(f"changes published, by reason: {dict(sorted(channel.reasons.items()))}")
    for reason in (
        "failure_threshold",
        "trip",
        "reset",
        "probe_failed",
        "probes_succeeded",
    ):
        log.at_least(f"the storm made {reason} changes", channel.reasons[reason], 1)
    log.figure(
        f"{num(sampler.samples)} samples of the permits in Redis"
        f" ({num(sampler.unanswered)} unanswered while it was down or frozen);"
        f" most live at once: {dict(sampler.most)}"
    )
    log.equal(
        "live probe permits in Redis never above half_open_max_calls",
        [
            f"{name}: {most}"
            for name, most in sampler.most.items()
            if most > CONFIGS[name].half_open_max_calls
        ],
        [],
    )
    log.equal("every victim was killed inside a probe", record.unprobed, 0)
    log.equal(
        f"each time, one of at most {VICTIMS} victims held the circuit's one"
        " permit in Redis when killed",
        record.unheld,
        0,
    )
    degraded = _degraded_spells(reports)
    wedged, early, unjudged = [], [], 0
    after_lapse: list[float] = []
    for name, permits, since, killed in record.probers:
        moved = sampler.changed_after(name, killed)
        if moved is not None and killed + moved > record.quiet:
            moved = None  # moved by the checks at the end, not by the fleet
        lapsed = since + PERMIT_TTL - killed  # at the latest, from the kill
        if moved is not None:
            after_lapse.append(moved - lapsed)
        if moved is None or moved > lapsed + 1.0:
            wedged.append(name)
        if permits != 1:
            continue
        if any(down <= killed + lapsed and up >= killed for down, up in degraded):
            # A degraded store probes alone, without a permit, as designed:
            # one degraded at any time while the permit lived (from before
            # the kill, too) may have changed the circuit meanwhile.
            unjudged += 1
        elif moved is None or moved < lapsed - LAPSE_MARGIN:
            early.append(name)
    held = sum(permits == 1 for _, permits, _, _ in record.probers)
    log.figure(
        f"{len(record.probers)} workers killed inside a probe of 'solo', {held}"
        " holding its one permit"
        + (
            f"; the circuit changed again, from its permit's lapse: min"
            f" {_ms(min(after_lapse))}, median {_ms(statistics.median(after_lapse))},"
            f" max {_ms(max(after_lapse))}"
            if after_lapse
            else ""
        )
    )
    # The dead prober held the circuit's one permit: no other worker may
    # probe (and so change it) until the permit lapses, on the server's clock.
    log.equal(
        "nobody else probed while a dead prober's permit lived"
        f" ({unjudged} not judged: a store was degraded meanwhile)",
        early,
        [],
    )
    log.equal(
        "no circuit wedged by a dead prober: each changed within 1 s of its"
        f" permit lapsing (permit_ttl {PERMIT_TTL:g} s)",
        wedged,
        [],
    )


def _check_exits(log: Log, fleet: Fleet, reports: list[dict[str, Any]]) -> None:
    log.section("closing")
    log.figure(
        "log records of the workers' aiobreakers logger (kept off stderr):"
        f" {num(sum(report['log_records'] for report in reports))}"
    )
    log.equal(
        "no thread left in any worker after store.close()",
        [report["threads_left"] for report in reports if report["threads_left"]],
        [],
    )
    codes = []
    for member in fleet.members:
        member.process.join(WAIT)
        if member.killed is None:
            codes.append(member.process.exitcode)
    log.equal(
        "every worker not killed exited cleanly (exit code 0)", codes, [0] * len(codes)
    )
