"""The fleet benchmark's measurements made in this process, on a real Redis.

- :func:`run_timing`: calls through a breaker with a ``RedisStore`` against
  the same breaker with none, a bare call and pybreaker with its Redis
  storage (interleaved rounds, as in ``run.py``).
- :func:`run_commands`: Redis commands per 10,000 successful calls, read from
  ``INFO commandstats`` before and after, less those of an idle interval of
  the same length (the store's background resyncs).
- :func:`run_freeze`: the latency of each call while the server is frozen
  (``SIGSTOP``): closed calls, open rejections and half-open probes.

Trip propagation across processes is in ``_fleet_propagation.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any, Final

import redis
from _cases import down, ok, ok_async, unique
from _impls import FAILURE_THRESHOLD, RECOVERY_SECONDS, SUBJECT, Library, Skip
from _measure import (
    async_sampler,
    interleaved_samples,
    median_ratio,
    raising_sampler,
    sync_sampler,
)

from aiobreakers import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    StoreDegraded,
    StoreRecovered,
)
from aiobreakers.redis import RedisStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from _measure import Body, Sampler

    from aiobreakers import Event
    from redis_server import RedisServer

BARE: Final = "bare"
STORE_SUFFIX: Final = " + Redis"
LIBRARY: Final = SUBJECT + STORE_SUFFIX
PYBREAKER: Final = Library(name="pybreaker")
# The ratio of a breaker with the store to the same breaker without.
STORE_TARGET: Final = 1.5
# Net Redis commands per 10,000 successful calls that still count as none.
COMMANDS_TARGET: Final = 1.0
# The resync interval of the store whose commands are counted without
# subtracting anything: longer than the measurement, so no resync falls in it.
QUIET_RESYNC: Final = 60.0


@dataclass(frozen=True, kw_only=True)
class FleetSettings:
    """How hard to measure."""

    rounds: int  # interleaved rounds of the timing cases
    sample_ns: float  # wall time of one sample of one implementation
    pybreaker_calls: int  # pybreaker's successful calls whose commands are read
    busy_seconds: float  # aiobreakers with default settings: calls this long
    processes: int
    propagation_rounds: int
    freeze_seconds: float  # how long each phase of the freeze case lasts
    probes: int  # half-open probes per phase of the freeze case
    batch: int  # calls timed one by one, per batch, in the freeze case


FULL: Final = FleetSettings(
    rounds=15,
    sample_ns=20e6,
    pybreaker_calls=10_000,
    busy_seconds=2.0,
    processes=4,
    propagation_rounds=200,
    freeze_seconds=2.0,
    probes=6,
    batch=1_000,
)
QUICK: Final = FleetSettings(
    rounds=3,
    sample_ns=0.5e6,
    pybreaker_calls=1_000,
    busy_seconds=0.3,
    processes=4,
    propagation_rounds=20,
    freeze_seconds=0.8,
    probes=3,
    batch=200,
)


def _config(**fields: Any) -> BreakerConfig:
    """Configure a breaker as run.py does: 5 failures open it, for an hour."""
    options: dict[str, Any] = {
        "failure_threshold": FAILURE_THRESHOLD,
        "recovery_timeout": float(RECOVERY_SECONDS),
    }
    return BreakerConfig(**(options | fields))


def _open(breaker: CircuitBreaker[..., Any]) -> None:
    """Open a breaker by failures, as run.py does (not by a back door)."""
    failing = breaker(down)
    for _ in range(FAILURE_THRESHOLD):
        with contextlib.suppress(Exception):
            failing()
    if breaker.state is not CircuitState.OPEN:
        raise RuntimeError(f"{breaker!r} did not open after {FAILURE_THRESHOLD}")


# -- the timing cases -----------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One implementation's figures in a timing case."""

    ns_per_call: float
    vs_bare: float  # median ratio to the bare call, round by round
    vs_local: float | None  # ... to the same library with no store


@dataclass(frozen=True)
class TimingCase:
    """A timing case: every implementation's row, or a status saying why not."""

    key: str
    title: str
    baseline: str
    rows: dict[str, Row | str]

    @property
    def store_ratio(self) -> float | None:
        """aiobreakers with the store over aiobreakers with none."""
        row = self.rows.get(SUBJECT + STORE_SUFFIX)
        return row.vs_local if isinstance(row, Row) else None

    @property
    def target_met(self) -> bool | None:
        """Whether the store costs at most ``STORE_TARGET`` times no store."""
        ratio = self.store_ratio
        return None if ratio is None else ratio <= STORE_TARGET


def _pybreaker(module: Any, name: str, client: redis.Redis | None) -> Any:
    """A pybreaker breaker as run.py builds it; on Redis when *client* is given."""
    options: dict[str, Any] = {}
    if client is not None:
        options["state_storage"] = module.CircuitRedisStorage(
            module.STATE_CLOSED, client, namespace=name
        )
    return module.CircuitBreaker(
        fail_max=FAILURE_THRESHOLD,
        reset_timeout=RECOVERY_SECONDS,
        name=name,
        **options,
    )


def _pybreaker_open(module: Any, breaker: Any) -> None:
    failing = breaker(down)
    for _ in range(FAILURE_THRESHOLD):
        with contextlib.suppress(Exception):
            failing()
    if breaker.current_state != module.STATE_OPEN:
        raise RuntimeError(f"pybreaker stayed {breaker.current_state}")


class _Subjects:
    """The breakers of the timing cases, and the stores and clients they use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stores: list[RedisStore] = []
        self.clients: list[redis.Redis] = []

    def store(self, **options: Any) -> RedisStore:
        store = RedisStore.from_url(self.url, namespace="fleet-timing", **options)
        self.stores.append(store)
        return store

    def breaker(self, *, shared: bool) -> CircuitBreaker[..., Any]:
        store = self.store() if shared else None
        return CircuitBreaker(unique("fleet"), _config(), store=store)

    def pybreaker(self, *, shared: bool) -> Any:
        module = PYBREAKER.load()
        if shared and not hasattr(module, "CircuitRedisStorage"):
            raise Skip("not available (no CircuitRedisStorage)")
        client = None
        if shared:
            # redis-py's defaults, as pybreaker's documentation shows.
            client = redis.Redis.from_url(self.url)
            self.clients.append(client)
        return module, _pybreaker(module, unique("pybreaker"), client)

    def close(self) -> None:
        for store in self.stores:
            store.close()
        for client in self.clients:
            client.close()


def _settle() -> None:
    """Let a store's background writes (a new breaker's resync) land first."""
    time.sleep(0.3)


def _checked_sync(body: Body) -> Body:
    result = body()
    if result != ok():
        raise RuntimeError(f"the call returned {result!r}")
    return body


def _checked_raises(body: Body) -> Body:
    try:
        body()
    except Exception:
        return body
    raise RuntimeError("the call did not raise")


def _not_applicable() -> Sampler:
    """pybreaker's only async support is for Tornado coroutines."""
    raise Skip("n/a")


def _attempt(build: Callable[[], Sampler]) -> Sampler | str:
    try:
        return build()
    except Skip as skip:
        return str(skip)
    except Exception as error:
        return f"error ({type(error).__name__}: {error})"


def _measure_case(
    key: str,
    title: str,
    baseline: str,
    builders: dict[str, Callable[[], Sampler]],
    settings: FleetSettings,
) -> TimingCase:
    """Time every implementation round-robin; ratios to bare and to no store."""
    gc.collect()
    samplers: dict[str, Sampler] = {}
    statuses: dict[str, str] = {}
    for name, build in builders.items():
        outcome = _attempt(build)
        if isinstance(outcome, str):
            statuses[name] = outcome
        else:
            samplers[name] = outcome
    _settle()
    samples = interleaved_samples(samplers, settings.rounds, settings.sample_ns)
    rows: dict[str, Row | str] = {}
    for name in builders:
        values = samples.get(name)
        if values is None:
            rows[name] = statuses[name]
            continue
        local = samples.get(name.removesuffix(STORE_SUFFIX))
        rows[name] = Row(
            ns_per_call=statistics.median(values),
            vs_bare=median_ratio(values, samples[BARE]),
            vs_local=(
                median_ratio(values, local)
                if name.endswith(STORE_SUFFIX) and local is not None
                else None
            ),
        )
    return TimingCase(key=key, title=title, baseline=baseline, rows=rows)


def _success_case(subjects: _Subjects, settings: FleetSettings) -> TimingCase:
    def ours(*, shared: bool) -> Sampler:
        return sync_sampler(_checked_sync(subjects.breaker(shared=shared)(ok)))

    def theirs(*, shared: bool) -> Sampler:
        _, breaker = subjects.pybreaker(shared=shared)
        return sync_sampler(_checked_sync(breaker(ok)))

    return _measure_case(
        "success_sync",
        "sync success, closed breaker",
        "f()",
        {
            BARE: lambda: sync_sampler(ok),
            SUBJECT: functools.partial(ours, shared=False),
            SUBJECT + STORE_SUFFIX: functools.partial(ours, shared=True),
            "pybreaker": functools.partial(theirs, shared=False),
            "pybreaker" + STORE_SUFFIX: functools.partial(theirs, shared=True),
        },
        settings,
    )


def _async_case(
    subjects: _Subjects, settings: FleetSettings, loop: asyncio.AbstractEventLoop
) -> TimingCase:
    def ours(*, shared: bool) -> Sampler:
        body = subjects.breaker(shared=shared)(ok_async)
        if loop.run_until_complete(body()) != ok():
            raise RuntimeError("the call did not return its result")
        return async_sampler(body, loop)

    return _measure_case(
        "success_async",
        "async success, closed breaker",
        "await f()",
        {
            BARE: lambda: async_sampler(ok_async, loop),
            SUBJECT: functools.partial(ours, shared=False),
            SUBJECT + STORE_SUFFIX: functools.partial(ours, shared=True),
            "pybreaker": _not_applicable,
        },
        settings,
    )


def _reject_case(subjects: _Subjects, settings: FleetSettings) -> TimingCase:
    def ours(*, shared: bool) -> Sampler:
        breaker = subjects.breaker(shared=shared)
        _open(breaker)
        return raising_sampler(_checked_raises(breaker(ok)))

    def theirs(*, shared: bool) -> Sampler:
        module, breaker = subjects.pybreaker(shared=shared)
        _pybreaker_open(module, breaker)
        return raising_sampler(_checked_raises(breaker(ok)))

    return _measure_case(
        "open_reject",
        "open breaker, reject",
        "raise + except",
        {
            BARE: lambda: raising_sampler(down),
            SUBJECT: functools.partial(ours, shared=False),
            SUBJECT + STORE_SUFFIX: functools.partial(ours, shared=True),
            "pybreaker": functools.partial(theirs, shared=False),
            "pybreaker" + STORE_SUFFIX: functools.partial(theirs, shared=True),
        },
        settings,
    )


def run_timing(url: str, settings: FleetSettings) -> list[TimingCase]:
    """Time the success and reject paths with and without a shared store."""
    subjects = _Subjects(url)
    loop = asyncio.new_event_loop()
    try:
        return [
            _success_case(subjects, settings),
            _async_case(subjects, settings, loop),
            _reject_case(subjects, settings),
        ]
    finally:
        loop.close()
        subjects.close()


# -- Redis commands per successful call ----------------------------------------


class _CommandStats:
    """``INFO commandstats`` of the benchmark's own server, read by its own client."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)

    def read(self) -> Counter[str]:
        """Return the calls of every command so far, less this probe's own INFO."""
        stats = self._client.info("commandstats")
        counts = Counter(
            {
                name.removeprefix("cmdstat_"): int(value["calls"])
                for name, value in stats.items()
            }
        )
        del counts["info"]
        return counts

    def during(self, action: Callable[[], int]) -> tuple[int, float, Counter[str]]:
        """Run *action*; return the calls it made, its seconds and the commands."""
        before = self.read()
        start = time.perf_counter()
        calls = action()
        seconds = time.perf_counter() - start
        return calls, seconds, self.read() - before

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class CommandCount:
    """The commands some successful calls caused, less those of an idle interval.

    ``busy`` holds every command the server ran while the calls ran (Redis
    counts the commands a Lua script runs, too); ``idle`` those of an
    interval of the same length right after, with the same breakers alive
    and no calls: the store's background work.
    """

    library: str
    title: str
    calls: int
    seconds: float
    busy: Counter[str]
    idle: Counter[str]

    @property
    def net(self) -> Counter[str]:
        """The commands the calls caused (negative counts kept, as noise)."""
        net = Counter(self.busy)
        net.subtract(self.idle)
        return net

    @property
    def per_10k(self) -> float:
        """Net commands per 10,000 successful calls."""
        return sum(self.net.values()) * 10_000 / self.calls


@dataclass(frozen=True)
class Commands:
    """Net Redis commands per 10,000 successful calls, for each configuration."""

    # Each library's counts, or (library, the status saying why none).
    counts: list[CommandCount | tuple[str, str]]
    background_per_second: float  # one idle store, default settings

    @property
    def target_met(self) -> bool | None:
        """Whether aiobreakers, in every configuration, sends ~0 commands."""
        ours = [
            count.per_10k
            for count in self.counts
            if isinstance(count, CommandCount) and count.library.startswith(SUBJECT)
        ]
        return None if not ours else all(abs(n) < COMMANDS_TARGET for n in ours)


def _idle(seconds: float) -> Callable[[], int]:
    def action() -> int:
        time.sleep(seconds)
        return 0

    return action


def _count(
    stats: _CommandStats, library: str, title: str, action: Callable[[], int]
) -> CommandCount:
    calls, seconds, busy = stats.during(action)
    _, _, idle = stats.during(_idle(seconds))
    return CommandCount(
        library=library, title=title, calls=calls, seconds=seconds, busy=busy, idle=idle
    )


def _calls(fn: Callable[[], object], calls: int) -> Callable[[], int]:
    def action() -> int:
        for _ in repeat(None, calls):
            fn()
        return calls

    return action


def _calls_for(fn: Callable[[], object], seconds: float) -> Callable[[], int]:
    """Call *fn* in batches of 1,000 until *seconds* have passed; count them."""

    def action() -> int:
        made = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for _ in repeat(None, 1_000):
                fn()
            made += 1_000
        return made

    return action


def _subject_count(
    stats: _CommandStats, url: str, settings: FleetSettings, *, quiet: bool
) -> CommandCount:
    options = {"resync_interval": QUIET_RESYNC} if quiet else {}
    with RedisStore.from_url(url, namespace="fleet-commands", **options) as store:
        call = CircuitBreaker(unique("commands"), _config(), store=store)(ok)
        call()
        _settle()
        if quiet:
            title = f"resync_interval={QUIET_RESYNC:g} s, 10,000 calls"
            return _count(stats, LIBRARY, title, _calls(call, 10_000))
        seconds = settings.busy_seconds
        title = f"default settings, calls for {seconds:g} s"
        return _count(stats, LIBRARY, title, _calls_for(call, seconds))


def _pybreaker_count(
    stats: _CommandStats, url: str, settings: FleetSettings
) -> CommandCount:
    module = PYBREAKER.load()
    with redis.Redis.from_url(url) as client:
        breaker = _pybreaker(module, unique("pybreaker"), client)
        call = breaker(ok)
        call()
        calls = settings.pybreaker_calls
        title = f"redis-py defaults, {calls:,} calls"
        return _count(stats, "pybreaker" + STORE_SUFFIX, title, _calls(call, calls))


def _background(stats: _CommandStats, url: str, seconds: float) -> float:
    """Commands per second of one idle store with one breaker, default settings."""
    with RedisStore.from_url(url, namespace="fleet-idle") as store:
        call = CircuitBreaker(unique("idle"), _config(), store=store)(ok)
        call()
        _settle()
        _, elapsed, idle = stats.during(_idle(seconds))
        call()  # the breaker stays alive to the end (the store holds it weakly)
    return sum(idle.values()) / elapsed


def run_commands(url: str, settings: FleetSettings) -> Commands:
    """Count the Redis commands of successful calls, with each library."""
    stats = _CommandStats(url)
    counts: list[CommandCount | tuple[str, str]] = []
    try:
        counts.extend(
            _subject_count(stats, url, settings, quiet=quiet) for quiet in (True, False)
        )
        try:
            counts.append(_pybreaker_count(stats, url, settings))
        except Skip as skip:
            counts.append(("pybreaker" + STORE_SUFFIX, str(skip)))
        background = _background(stats, url, max(1.0, settings.busy_seconds))
    finally:
        stats.close()
    return Commands(counts=counts, background_per_second=background)


# -- calls while Redis is frozen -------------------------------------------------

# The half-open breakers of the freeze case open for this long, so that they
# are half-open by the time their probe is due.
PROBE_RECOVERY: Final = 0.1
# A half-open call may wait claim_timeout, and this much for the scheduler.
PROBE_SLACK: Final = 0.02
# A call that never touches Redis takes microseconds; one that waited for a
# frozen server would take a socket timeout (250 ms), or claim_timeout.
LOCAL_P99_TARGET_NS: Final = 100_000
# The "re-converges within a second".
RECOVERY_TARGET: Final = 1.0


@dataclass(frozen=True)
class Latencies:
    """Percentiles of calls timed one by one, in nanoseconds."""

    calls: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Latencies:
        """Summarise *values* (at least 2)."""
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return cls(calls=len(values), p50=cuts[49], p99=cuts[98], max=max(values))


@dataclass(frozen=True)
class Probe:
    """One half-open call: when (seconds into its phase) and how long it took."""

    at: float
    seconds: float
    admitted: bool


@dataclass(frozen=True)
class Phase:
    """What calls cost over one phase: Redis healthy, frozen, or just thawed."""

    closed: Latencies
    rejected: Latencies
    alone: Latencies  # closed calls of a breaker with no store, for comparison
    probes: list[Probe]


@dataclass(frozen=True)
class Freeze:
    """Calls before, during and after a freeze (SIGSTOP) of the server."""

    seconds: float
    claim_timeout: float
    before: Phase
    during: Phase
    after: Phase
    degraded_after: float | None  # seconds from SIGSTOP to StoreDegraded
    recovered_after: float | None  # seconds from SIGCONT to StoreRecovered
    healthy_after: bool  # store.healthy once recovered

    @property
    def local_met(self) -> bool:
        """Whether closed calls and rejections stayed local during the freeze."""
        during = self.during
        return max(during.closed.p99, during.rejected.p99) <= LOCAL_P99_TARGET_NS

    @property
    def probes_met(self) -> bool:
        """Whether every half-open call waited at most claim_timeout (and slack)."""
        longest = max((probe.seconds for probe in self.during.probes), default=0.0)
        return longest <= self.claim_timeout + PROBE_SLACK

    @property
    def recovery_met(self) -> bool:
        """Whether the store was healthy within a second of the thaw."""
        recovered = self.recovered_after
        return (
            self.healthy_after
            and recovered is not None
            and recovered <= RECOVERY_TARGET
        )


class _Outages:
    """The store's sink: when it said it degraded and when it recovered."""

    def __init__(self) -> None:
        self.degraded: float | None = None
        self.recovered: float | None = None
        self._recovered = threading.Event()

    def emit(self, event: Event) -> None:
        if isinstance(event, StoreDegraded):
            self.degraded = time.monotonic()
        elif isinstance(event, StoreRecovered):
            self.recovered = time.monotonic()
            self._recovered.set()

    def wait_recovered(self, seconds: float) -> bool:
        return self._recovered.wait(seconds)


def _time_calls(call: Callable[[], object], calls: int, into: list[int]) -> None:
    clock = time.perf_counter_ns
    for _ in repeat(None, calls):
        start = clock()
        call()
        into.append(clock() - start)


def _time_rejections(call: Callable[[], object], calls: int, into: list[int]) -> None:
    clock = time.perf_counter_ns
    for _ in repeat(None, calls):
        start = clock()
        with contextlib.suppress(CircuitOpenError):
            call()
        into.append(clock() - start)


class _FreezeSubjects:
    """
    The freeze case's breakers: one closed, one open, and some to probe.

    And one closed breaker with no store: what its calls' tail looks like
    when Redis has nothing to do with it.
    """

    def __init__(self, url: str, outages: _Outages) -> None:
        self.store = RedisStore.from_url(url, namespace="fleet-freeze", sink=outages)
        self.closed = CircuitBreaker(unique("closed"), _config(), store=self.store)
        self.open = CircuitBreaker(unique("open"), _config(), store=self.store)
        self.alone = CircuitBreaker(unique("alone"), _config())
        _open(self.open)
        self.probing: list[CircuitBreaker[..., Any]] = []

    def probes(self, count: int) -> list[Callable[[], object]]:
        """Open *count* breakers that go half-open in ``PROBE_RECOVERY``."""
        config = _config(recovery_timeout=PROBE_RECOVERY, success_threshold=1)
        made = [
            CircuitBreaker(unique("probe"), config, store=self.store)
            for _ in range(count)
        ]
        for breaker in made:
            breaker.trip()
        self.probing.extend(made)
        return [breaker(ok) for breaker in made]


def _phase(
    subjects: _FreezeSubjects,
    seconds: float,
    batch: int,
    probes: list[Callable[[], object]],
) -> Phase:
    """Time calls in batches for *seconds*, and the probes spread over them."""
    closed_call = subjects.closed(ok)
    rejected_call = subjects.open(ok)
    alone_call = subjects.alone(ok)
    closed: list[int] = []
    rejected: list[int] = []
    alone: list[int] = []
    made: list[Probe] = []
    start = time.monotonic()
    first = PROBE_RECOVERY * 1.5
    step = (seconds - first) / max(1, len(probes))
    due = [start + first + index * step for index in range(len(probes))]
    waiting = list(probes)
    while (now := time.monotonic()) < start + seconds:
        _time_calls(closed_call, batch, closed)
        _time_rejections(rejected_call, batch, rejected)
        _time_calls(alone_call, batch, alone)
        if waiting and now >= due[len(made)]:
            probe = waiting.pop(0)
            began = time.perf_counter()
            admitted = True
            try:
                probe()
            except CircuitOpenError:
                admitted = False
            took = time.perf_counter() - began
            made.append(Probe(at=now - start, seconds=took, admitted=admitted))
        time.sleep(0.005)
    return Phase(
        closed=Latencies.of(closed),
        rejected=Latencies.of(rejected),
        alone=Latencies.of(alone),
        probes=made,
    )


def run_freeze(server: RedisServer, settings: FleetSettings) -> Freeze:
    """Time calls with Redis healthy, frozen (SIGSTOP), then thawed."""
    outages = _Outages()
    subjects = _FreezeSubjects(server.url, outages)
    seconds, batch = settings.freeze_seconds, settings.batch
    try:
        # The first claim also starts the store's claim thread and connects
        # it to Redis: that one-time cost is not what a probe costs.
        warmup = subjects.probes(1)
        _settle()
        warmup[0]()
        before = _phase(subjects, seconds, batch, subjects.probes(settings.probes))
        frozen_probes = subjects.probes(settings.probes)
        _settle()  # the trips are written before the server stops
        server.freeze()
        frozen = time.monotonic()
        try:
            during = _phase(subjects, seconds, batch, frozen_probes)
        finally:
            server.thaw()
        thawed = time.monotonic()
        outages.wait_recovered(5.0)
        after = _phase(subjects, seconds / 2, batch, [])
        return Freeze(
            seconds=seconds,
            claim_timeout=subjects.store.claim_timeout,
            before=before,
            during=during,
            after=after,
            degraded_after=(
                None if outages.degraded is None else outages.degraded - frozen
            ),
            recovered_after=(
                None if outages.recovered is None else outages.recovered - thawed
            ),
            healthy_after=subjects.store.healthy,
        )
    finally:
        subjects.store.close()


@contextlib.contextmanager
def quiet_store_warnings() -> Iterator[None]:
    """Keep the store's "degraded" warnings (the freeze case) out of the tables.

    The freeze case reports the same events from the store's sink.
    """
    store_logger = logging.getLogger("aiobreakers")
    handler = logging.NullHandler()
    store_logger.addHandler(handler)
    try:
        yield
    finally:
        store_logger.removeHandler(handler)
