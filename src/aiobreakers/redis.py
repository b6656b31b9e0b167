"""
A fleet of processes sharing one circuit per breaker name, through Redis.

Install with ``pip install "aiobreakers[redis]"`` (redis-py). Give every
breaker that should share its circuit the same :class:`RedisStore`::

    client = redis.Redis(host="127.0.0.1", port=6379)
    store = RedisStore(client, namespace="checkout")
    config = BreakerConfig(failure_threshold=5)
    payments = CircuitBreaker("payments", config, store=store)

Breakers of the same namespace and name share one circuit in every process.
Nothing on the hot path touches the network: a healthy call and a rejection
read process memory only. Changes of state go to Redis from a background
thread, as atomic, fenced Lua scripts on the server's clock, and come back
to every process pushed (pub/sub), with a periodic re-read for what a
dropped connection missed. The one thing a call may wait for is a probe
permit when the circuit is half-open: one round trip, at most
``claim_timeout``. When Redis is down, slow or frozen, every breaker goes on
alone on its own state, and catches up when Redis returns.

See the guide, "Sharing a circuit across processes", for every failure mode
and what it costs.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import concurrent.futures
import contextlib
import math
import queue
import re
import secrets
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Final, cast

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.exceptions import NoScriptError
    from redis.retry import Retry
except ImportError as _missing:  # pragma: no cover - the extra is not installed
    raise ImportError(
        "aiobreakers.redis needs redis-py: pip install 'aiobreakers[redis]'"
    ) from _missing

from . import _fork
from ._config import TIME_BUCKETS, RateWindow
from ._events import StoreDegraded, StoreRecovered, emit, logger
from ._machine import CLOSED, HALF_OPEN, OPEN, CircuitState
from ._ports import EventSink, check_port
from ._public import publish
from ._redis_lua import CLAIM, PROBE, PROPOSE, READ, RESTORE, WINDOW
from ._sniff import in_trio

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from typing_extensions import Self

    from ._breaker import CircuitBreaker
    from ._config import BreakerConfig
    from ._machine import Machine, Ticket, Transition
    from ._store import Link

__all__ = ["RedisStore"]

# Connecting encodes the host name with the "idna" codec, found by an import
# on first use. In a child forked while another thread held the import lock,
# that import fails ("unknown encoding: idna"): find it now, in the parent.
codecs.lookup("idna")

# Namespaces and breaker names become parts of keys, channels and messages:
# no braces (Redis Cluster hash tags), no spaces (the messages' separator),
# and no colon in a namespace, which a colon ends in every key and channel.
_NAME: Final = r"[A-Za-z0-9_.:/-]{1,200}"
_NAMESPACE: Final = r"[A-Za-z0-9_./-]{1,200}"

# Seconds a background thread waits before trying a server that failed.
_BACKOFF: Final = 0.1

# The longest a refused claim (every permit taken) stands for later claims
# of the same process, which are refused without asking meanwhile.
_BUSY: Final = 0.1

# How long the key lasts that a degraded store writes, to learn whether
# Redis takes writes again (ms).
_ALIVE_MS: Final = 1000

# A script's reply: code, epoch, state, ms left, length ms, failed probes.
_Reply = tuple[int, int, str, int, int, int]

# A probe permit: its id, and the epoch it was granted in.
_Permit = tuple[str, int]

# Work for the writer besides proposals: ("probe" or "release", the permit,
# whether the probe failed).
_Op = tuple[str, _Permit, bool]


def _check_key_part(what: str, value: object, *, namespace: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {value!r}")
    if not re.fullmatch(_NAMESPACE if namespace else _NAME, value):
        allowed = "_ . / -" if namespace else "_ . : / -"
        raise ValueError(
            f"{what} {value!r} cannot be shared through Redis: use 1 to 200 of"
            f" the letters A-Z and a-z, digits, and {allowed}"
        )
    return value


def _check_seconds(field: str, value: object, *, least: float, most: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"RedisStore.{field} must be a number of seconds, got {value!r}"
        )
    if not (math.isfinite(value) and least <= value <= most):
        raise ValueError(
            f"RedisStore.{field} must be between {least} and {most} seconds,"
            f" got {value!r}"
        )
    return float(value)


def _ms(seconds: float) -> int:
    return max(0, math.ceil(seconds * 1000.0))


def _seconds(value: float | None) -> str:
    return "None" if value is None else repr(float(value))


def _describe(config: BreakerConfig) -> str:
    """
    Describe what a fleet's judgements rest on, the same for equal values.

    Numbers are written as floats, so that 30 and 30.0 read alike.
    """
    policy = config.trip_policy
    if isinstance(policy, RateWindow):
        rule = (
            f"RateWindow(calls={policy.calls}, seconds={_seconds(policy.seconds)},"
            f" minimum_calls={policy.minimum_calls},"
            f" failure_rate={_seconds(policy.failure_rate)},"
            f" slow_call_rate={_seconds(policy.slow_call_rate)},"
            f" slow_call_duration={_seconds(policy.slow_call_duration)})"
        )
    else:
        rule = f"ConsecutiveFailures(threshold={policy.threshold})"
    return (
        f"{rule}, recovery_timeout={_seconds(config.recovery_timeout)},"
        f" recovery_multiplier={_seconds(config.recovery_multiplier)},"
        f" max_recovery_timeout={_seconds(config.max_recovery_timeout)},"
        f" success_threshold={config.success_threshold},"
        f" half_open_max_calls={config.half_open_max_calls}"
    )


def _parse(raw: Any) -> _Reply:
    code, epoch, state, left, length, failed = raw
    if isinstance(state, bytes):
        state = state.decode()
    return int(code), int(epoch), str(state), int(left), int(length), int(failed)


class _Proposal:
    """A change of state one process decided and the fleet has not yet seen."""

    __slots__ = ("base", "forced", "length", "probes", "reason", "target")

    def __init__(  # noqa: PLR0913 - keyword-only but for the first three
        self,
        base: int | None,
        target: str,
        reason: str,
        *,
        forced: bool,
        length: int = 0,
        probes: int = 0,
    ) -> None:
        # The epoch it was decided on; None: on the one being written now.
        self.base = base
        self.target = target
        self.reason = reason
        self.forced = forced
        self.length = length
        self.probes = probes


class _Link:
    """
    One breaker's handle on its shared circuit.

    Its state (the fleet's epoch as last seen, the proposal not yet written,
    the window's counts) is guarded by the breaker's lock: the breaker calls
    in holding it, and the store's threads take it through
    ``breaker._store_update``.
    """

    __slots__ = (
        "__weakref__",
        "_breaker",
        "busy_until",
        "config",
        "config_checked",
        "counts",
        "counts_epoch",
        "diverged",
        "epoch",
        "fresh",
        "inflight",
        "keys",
        "name",
        "news",
        "pending",
        "store",
        "tallies",
        "telling",
        "window",
    )

    def __init__(self, store: RedisStore, breaker: CircuitBreaker[..., Any]) -> None:
        self.store = store
        self.name = breaker.name
        tag = f"aiobreakers:{{{store.namespace}:{self.name}}}"
        # The scripts take the first three; then _check_configs' and
        # _check_writes'.
        self.keys = (
            f"{tag}:state",
            f"{tag}:permits",
            f"{tag}:window",
            f"{tag}:config",
            f"{tag}:alive",
        )
        self._breaker = weakref.ref(breaker)
        policy = breaker.config.trip_policy
        # What the fleet's judgements rest on, told to the other processes
        # (see RedisStore._check_configs).
        self.config = _describe(breaker.config)
        self.config_checked = False
        self.window = (
            policy if isinstance(policy, RateWindow) and policy.seconds else None
        )
        self.tallies = self.window is not None
        self.epoch = 0
        # Until when (monotonic) the fleet's probe permits are known taken.
        self.busy_until = 0.0
        # Whether this process's state is its own alone: its time window
        # opened the circuit while the store was down. The fleet's window
        # decides with a quorum, so that verdict is never shared, and the
        # fleet's state is taken back at the first reply once the store
        # shares again (see take).
        self.diverged = False
        # Whether this process's state is the fleet's as last taken (at
        # epoch), with no change of its own since: the next change is then
        # decided on epoch, whatever was queued or in flight before (see
        # changed).
        self.fresh = False
        self.pending: _Proposal | None = None
        self.inflight: _Proposal | None = None
        self.counts = [0, 0, 0]  # calls, failures, slow calls
        self.counts_epoch = 0
        # Changes not yet told of, in the order made; one thread tells at a
        # time (see announce).
        self.news: collections.deque[Transition] = collections.deque()
        self.telling = threading.Lock()

    @property
    def breaker(self) -> CircuitBreaker[..., Any] | None:
        return self._breaker()

    # -- called by the breaker, under its lock ---------------------------------

    def changed(self, change: Transition, *, length: float, failed_probes: int) -> None:
        reason = change.reason
        if reason in ("fleet", "recovery_timeout"):
            return  # from the fleet, or the time: nothing to share
        forced = reason in ("trip", "reset", "forced")
        if self.tallies and reason in ("failure_rate", "slow_call_rate"):
            self.diverged = True
        if self.diverged and not forced:
            return
        if change.new is OPEN:
            proposal = _Proposal(
                None,
                "open",
                reason,
                forced=forced,
                length=_ms(length),
                probes=failed_probes,
            )
        elif change.new is CLOSED:
            proposal = _Proposal(None, "closed", reason, forced=forced)
        else:  # forced half-open (aiobreakers.testing): open with no time left
            proposal = _Proposal(None, "open", reason, forced=True)
        earlier = self.pending
        # Only a forced change gets here from a diverged state: everyone's.
        self.diverged = False
        if self.fresh:
            # Decided on the fleet's state taken at epoch, which replaced
            # here whatever is queued or in flight: so on epoch, not on
            # theirs. Fenced on theirs, it would be refused, and the
            # refusal (of this very epoch) taken as nothing new: the change
            # never shared, and this process left on a state the fleet
            # never had (a breaker half-open on a circuit closed in Redis).
            self.fresh = False
            proposal.base = self.epoch
        elif earlier is not None:
            # Only the latest state matters, decided on the oldest epoch;
            # it is forced only if it was itself.
            proposal.base = earlier.base
        elif self.inflight is None:
            proposal.base = self.epoch
        self.pending = proposal
        self.store._wake(self)

    def tally(self, failed: bool, duration: float | None) -> None:
        if self.counts_epoch != self.epoch:
            self.counts = [0, 0, 0]
            self.counts_epoch = self.epoch
        counts = self.counts
        counts[0] += 1
        counts[1] += failed
        window = self.window
        if window is not None and window.slow_call_duration is not None:
            counts[2] += duration is not None and duration > window.slow_call_duration

    def announce(self, breaker: CircuitBreaker[..., Any], change: Transition) -> None:
        self.news.append(change)
        self.tell(breaker)

    def tell(self, breaker: CircuitBreaker[..., Any]) -> None:
        """
        Tell of the changes in :attr:`news`, in order, unless another thread is.

        The thread telling takes what is added meanwhile too, so no change
        waits on a thread that has left.
        """
        news = self.news
        while news and self.telling.acquire(blocking=False):
            try:
                while news:
                    breaker._tell(news.popleft())
            finally:
                self.telling.release()

    def probe_done(self, permit: object, *, failed: bool) -> None:
        self.store._enqueue(self, ("probe", cast("_Permit", permit), failed))

    def release(self, permit: object) -> None:
        self.store._enqueue(self, ("release", cast("_Permit", permit), False))

    # -- claims: a caller waits, at most claim_timeout -------------------------

    def _ask(self) -> tuple[concurrent.futures.Future[_Reply], str] | bool:
        """
        Send a claim to a claim thread: its reply to come, and the permit.

        Or decide it without Redis, where that can be: ``True`` when the
        breaker's own state decides, ``False`` while every permit is taken.
        """
        store = self.store
        if not store._usable():
            return store._alone()
        if time.monotonic() < self.busy_until:
            return False
        permit = secrets.token_hex(8)
        future = store._send_claim(self._claim, permit)
        return store._alone() if future is None else (future, permit)

    def claim(self, ticket: Ticket) -> bool:
        store = self.store
        asked = self._ask()
        if isinstance(asked, bool):
            return asked
        future, permit = asked
        try:
            reply = future.result(store.claim_timeout)
        except BaseException as error:  # noqa: BLE001 - _unanswered raises the caller's own
            self._unanswered(error, future, permit)
            return True
        return self._verdict(ticket, permit, reply)

    async def claim_async(self, ticket: Ticket) -> bool:
        asked = self._ask()
        if isinstance(asked, bool):
            return asked
        future, permit = asked
        reply = await self._await(future, permit)
        return True if reply is None else self._verdict(ticket, permit, reply)

    async def _await(
        self, future: concurrent.futures.Future[_Reply], permit: str
    ) -> _Reply | None:
        """Await a claim's reply, at most claim_timeout; ``None``: go on without."""
        store = self.store
        try:
            if in_trio():
                return await _trio_result(future, store.claim_timeout)
            return await asyncio.wait_for(
                asyncio.wrap_future(future), store.claim_timeout
            )
        except BaseException as error:  # noqa: BLE001 - _unanswered raises the caller's own
            self._unanswered(error, future, permit)
            return None

    def _unanswered(
        self,
        error: BaseException,
        future: concurrent.futures.Future[_Reply],
        permit: str,
    ) -> None:
        """
        Settle a claim whose wait ended without a reply, by *error*.

        The caller goes on without a permit, unless *error* is its own
        (interrupted, or its task cancelled), which is raised again.
        """
        store = self.store
        if isinstance(
            error, (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)
        ):
            self._abandon(future, permit, store)
        elif isinstance(error, concurrent.futures.CancelledError):
            pass  # close() cancelled the claim
        elif isinstance(error, Exception):
            self._abandon(future, permit, None)  # it may have been granted
            store._degraded(error)
        # close() cancels waiting claims, which is not this task's cancellation.
        elif not (
            isinstance(error, asyncio.CancelledError)
            and store._closed
            and future.cancelled()
        ):
            self._abandon(future, permit, None)
            raise error

    def _claim(self, permit: str) -> _Reply:
        store = self.store
        breaker = self.breaker
        most = 1 if breaker is None else breaker.config.half_open_max_calls
        reply = store._run("claim", self, permit, most, store._permit_ms)
        if reply[0] == 1:
            # Known here, whether the caller still waits or not, so that
            # close() can give it back.
            store._hold(self, (permit, reply[1]))
        return reply

    def _abandon(
        self,
        future: concurrent.futures.Future[_Reply],
        permit: str,
        slow: RedisStore | None,
    ) -> None:
        """
        Give the permit back if it comes: the caller stopped waiting.

        With *slow*, it stopped because the claim took too long: that store
        counts as degraded (later claims do not wait) until Redis answers.
        """
        if slow is not None:
            slow._degraded(
                TimeoutError(
                    f"a probe permit took longer than claim_timeout"
                    f" ({slow.claim_timeout}s)"
                )
            )

        def give_back(done: concurrent.futures.Future[_Reply]) -> None:
            if done.cancelled():
                return
            # A claim that failed may have been granted all the same (its
            # reply lost): giving back a permit nobody holds is harmless.
            if done.exception() is not None or done.result()[0] == 1:
                self.store._enqueue(self, ("release", (permit, 0), False))

        future.add_done_callback(give_back)

    def _verdict(self, ticket: Ticket, permit: str, reply: _Reply) -> bool:
        code, epoch, state = reply[0], reply[1], reply[2]
        if code == 1:
            ticket.permit = (permit, epoch)
            self.store._recovered()  # Redis took a write: it is back
        self.take(reply, refused=code == 0, here=True)
        if code == 0 and state == HALF_OPEN.value:
            # Every permit is taken: refuse here, without asking, until the
            # first expires, or for a moment (one may come back sooner).
            self.busy_until = time.monotonic() + min(reply[3] / 1000.0, _BUSY)
        return code != 0

    # -- the fleet's decisions, brought over -----------------------------------

    def take(self, reply: _Reply, *, refused: bool = False, here: bool = False) -> None:
        """
        Adopt the fleet's state from a reply or message, if it is newer.

        With *refused* (a claim was refused), also an open state of the same
        epoch: this process went half-open a moment before the fleet did.
        A state of this process's own (``diverged``) gives way to the
        fleet's of the same epoch too, but only while the store is healthy.
        The next change decided here is proposed on the epoch taken
        (``fresh``). The change is announced on the store's announcer
        thread, so that hooks never hold up its writer or listener; *here*:
        on the calling thread (a caller's own claim).
        """
        breaker = self.breaker
        if breaker is None:
            return

        def update(machine: Machine, now: float) -> Transition | None:
            _, epoch, state, left, length, failed = reply
            fleet = CircuitState(state)
            early = refused and fleet is OPEN and machine.spell.state is not OPEN
            # Its own verdict gives way to the fleet's once the store shares
            # again, not at a read while Redis still refuses writes.
            give_way = self.diverged and self.store._healthy
            if epoch < self.epoch or (epoch == self.epoch and not (give_way or early)):
                return None
            if epoch > self.epoch:
                self.busy_until = 0.0
            self.diverged = False
            self.epoch = epoch
            self.fresh = True
            if fleet is CLOSED and machine.spell.state is CLOSED:
                return None  # the same state: keep this spell and its counts
            change = machine.adopt(
                fleet,
                now,
                left=left / 1000.0,
                length=length / 1000.0,
                failed_probes=failed,
            )
            if change is not None and not here:
                self.news.append(change)  # in order, under the breaker's lock
            return change

        change = breaker._store_update(update, announce=here)
        if change is not None and not here:
            self.store._announce(self)


async def _trio_result(
    future: concurrent.futures.Future[_Reply], timeout: float
) -> _Reply:
    """
    Await *future* in a trio task, at most *timeout* seconds.

    Woken by the future itself, through the run's token: no worker thread
    waits on it (trio's are limited, and may all be busy).

    Raises:
        TimeoutError: It is not done in time.
    """
    import trio  # noqa: PLC0415 - only ever imported where it runs

    done = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def wake(_: concurrent.futures.Future[_Reply]) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(done.set)

    future.add_done_callback(wake)
    with trio.move_on_after(timeout):
        await done.wait()
    if not future.done():
        raise TimeoutError
    return future.result()


class RedisStore:
    """
    Shares the circuits of breakers across processes, through one Redis server.

    Breakers given the same store namespace and name share one circuit in
    every process; other namespaces and names never collide. Calls never wait
    on Redis, but to claim a half-open probe permit (at most
    *claim_timeout*); if Redis fails (or refuses writes), breakers go on
    alone on their own state and :class:`~aiobreakers.StoreDegraded` is
    emitted, then :class:`~aiobreakers.StoreRecovered` once Redis takes
    the store's reads and writes again.

    The store starts two background threads when the first breaker joins it
    (and again in a forked child); :meth:`close` stops them. Use it as a
    context manager to close it at the end of a block.

    Args:
        client: A sync :class:`redis.Redis` (an asyncio program needs no
            async client: the store's own threads talk to Redis). Its
            timeouts bound how fast an outage is noticed: see
            :meth:`from_url` for a client with settings fit for a breaker.
        namespace: Separates this fleet's circuits from any other's on the
            same server: letters, digits and ``_ . / -`` (a breaker's name
            may also hold ``:``).
        quorum: With a time-based :class:`~aiobreakers.RateWindow`, how many
            processes must have reported failures (or slow calls) in the
            window before the fleet's combined rate may open the circuit, so
            that one sick process cannot open it for all.
        claim_timeout: The longest a half-open call waits for a fleet-wide
            probe permit; past it, the breaker's own state decides.
        permit_ttl: How long a probe permit lasts: the most a process that
            dies mid-probe can hold one. Make it longer than a probe call.
        resync_interval: How often every circuit is read again, to catch
            what a dropped pub/sub connection missed, and to notice Redis
            coming back.
        flush_interval: How often a time window's counts go to Redis: the
            most a fleet-wide window's verdict waits.
        state_ttl: How long a circuit's keys stay in Redis after its last
            change (seconds).
        sink: Receives the store's own events (``StoreDegraded``,
            ``StoreRecovered``), in addition to the process-wide sink.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument is out of range (the message gives the range).
    """

    def __init__(  # noqa: PLR0913 - all but the client are keyword-only
        self,
        client: redis.Redis,
        *,
        namespace: str,
        quorum: int = 1,
        claim_timeout: float = 0.05,
        permit_ttl: float = 10.0,
        resync_interval: float = 0.25,
        flush_interval: float = 0.1,
        state_ttl: float = 86400.0,
        sink: EventSink | None = None,
    ) -> None:
        """Check the settings; the threads start with the first breaker."""
        if not isinstance(client, redis.Redis):
            raise TypeError(
                f"client must be a sync redis.Redis, got {client!r}"
                " (the store talks to Redis from its own threads, so asyncio"
                " programs need no async client)"
            )
        self.namespace: Final = _check_key_part("namespace", namespace, namespace=True)
        if isinstance(quorum, bool) or not isinstance(quorum, int):
            raise TypeError(f"RedisStore.quorum must be an int, got {quorum!r}")
        if quorum < 1:
            raise ValueError(f"RedisStore.quorum must be >= 1, got {quorum!r}")
        self.quorum: Final = quorum
        self.claim_timeout: Final = _check_seconds(
            "claim_timeout", claim_timeout, least=0.001, most=10.0
        )
        self.permit_ttl: Final = _check_seconds(
            "permit_ttl", permit_ttl, least=0.01, most=86400.0
        )
        self.resync_interval: Final = _check_seconds(
            "resync_interval", resync_interval, least=0.01, most=60.0
        )
        self.flush_interval: Final = _check_seconds(
            "flush_interval", flush_interval, least=0.001, most=60.0
        )
        self.state_ttl: Final = _check_seconds(
            "state_ttl", state_ttl, least=1.0, most=365 * 86400.0
        )
        self._sink = None if sink is None else check_port(sink, EventSink, "sink")
        if client.connection_pool.connection_kwargs.get("socket_timeout") is None:
            logger.warning(
                "RedisStore %r: the client has no socket timeout, so a frozen"
                " Redis is never noticed and its threads may hang; set"
                " socket_timeout, or use RedisStore.from_url",
                namespace,
            )
        self._client = client
        self._owns_client = False
        self._permit_ms = _ms(self.permit_ttl)
        self._channel = f"aiobreakers:{self.namespace}"
        self._scripts = {
            name: client.register_script(source)
            for name, source in (
                ("propose", PROPOSE),
                ("claim", CLAIM),
                ("probe", PROBE),
                ("read", READ),
                ("restore", RESTORE),
                ("window", WINDOW),
            )
        }
        self._links: dict[str, weakref.WeakSet[_Link]] = {}
        # Whether any breaker has a time window, whose counts are flushed.
        self._windows = False
        self._closed = False
        self._start()
        with _fork.making.lock:
            # Renewed last: its threads take the breakers' locks, which
            # must be the child's own by then.
            _fork.register(self, RedisStore._renew_after_fork, last=True)

    def _start(self) -> None:
        """Make the per-process part: threads, queues, the process's id."""
        self._process = secrets.token_hex(6)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._dirty: set[_Link] = set()
        self._ops: list[tuple[_Link, _Op]] = []
        # The probe permits callers hold, by token (close() gives them back).
        self._held: dict[str, tuple[_Link, _Permit]] = {}
        self._claiming: set[concurrent.futures.Future[_Reply]] = set()
        self._closing = False
        self._resync_now = True
        # flush(): passes of the writer asked for, and done; whether the
        # listener's subscription is confirmed.
        self._asked = self._done = 0
        self._listening = False
        self._stopping = threading.Event()
        self._healthy = True
        # The kinds of error logged in this outage (see _degraded).
        self._told: set[str] = set()
        # Whether the time windows' verdicts are left to the fleet.
        self._deferring = True
        self._down_since = 0.0
        self._claims = concurrent.futures.ThreadPoolExecutor(
            max_workers=4,
            thread_name_prefix=f"aiobreakers-redis-claim-{self.namespace}",
        )
        self._threads: list[threading.Thread] = []
        # Changes brought from the fleet, for the announcer thread to tell
        # hooks and sinks about; None stops it.
        self._announcements: queue.SimpleQueue[_Link | None] = queue.SimpleQueue()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str,
        timeout: float = 0.25,
        **options: Any,
    ) -> RedisStore:
        """
        Make a store with its own client, with settings fit for a breaker.

        The client (``redis.Redis.from_url(url)``) gets *timeout* for
        connecting and for every reply, and no client-side retries: an
        outage is noticed in *timeout*, not after redis-py's default of
        retries on 5-second timeouts. The store closes it in :meth:`close`.

        Args:
            url: A ``redis://`` or ``rediss://`` URL.
            namespace: As for :class:`RedisStore`.
            timeout: Seconds for connecting and for each reply.
            options: The other arguments of :class:`RedisStore`.
        """
        seconds = _check_seconds("timeout", timeout, least=0.001, most=60.0)
        client = redis.Redis.from_url(
            url,
            socket_timeout=seconds,
            socket_connect_timeout=seconds,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        store = cls(client, namespace=namespace, **options)
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        """Show the namespace and whether the store is healthy."""
        state = "closed" if self._closed else "healthy" if self._healthy else "degraded"
        return f"<RedisStore {self.namespace!r} {state}>"

    @property
    def healthy(self) -> bool:
        """Whether the store shares now: Redis took its last reads and writes."""
        return self._healthy and not self._closed

    # -- joining ---------------------------------------------------------------

    def attach(self, breaker: CircuitBreaker[..., Any], /) -> Link:
        """
        Connect *breaker* to its shared circuit (the breaker calls this).

        Raises:
            ValueError: The breaker's name has characters Redis keys here
                cannot hold, or *quorum* is above 1 and the breaker does not
                trip on a time-based window (only a window combines the
                fleet's counts; a count of failures in a row is one process's).
            RuntimeError: The store is closed.
        """
        if self._closed:
            raise RuntimeError(f"{self!r} is closed: make a new store")
        _check_key_part("breaker name", breaker.name)
        link = _Link(self, breaker)
        if self.quorum > 1 and link.window is None:
            raise ValueError(
                f"RedisStore(quorum={self.quorum}) needs breakers that trip on"
                " a time window, such as BreakerConfig(trip=RateWindow("
                f"seconds=60, ...)); breaker {breaker.name!r} trips on"
                f" {breaker.config.trip_policy!r}, which one process decides alone"
            )
        with self._lock:
            self._links.setdefault(link.name, weakref.WeakSet()).add(link)
            self._windows = self._windows or link.tallies
            self._resync_now = True
            if not self._threads:
                self._spawn()
            self._cond.notify()
        self._defer(link)
        return link

    def _spawn(self) -> None:
        """Under the lock: start the background threads."""
        for target, role in (
            (self._write_loop, "writer"),
            (self._listen_loop, "listener"),
            (self._announce_loop, "announcer"),
        ):
            thread = threading.Thread(
                target=target,
                name=f"aiobreakers-redis-{role}-{self.namespace}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _all_links(self) -> list[_Link]:
        with self._lock:
            return [link for links in self._links.values() for link in links]

    # -- closing ---------------------------------------------------------------

    def flush(self, timeout: float = 1.0) -> bool:
        """
        Write what is queued, send the windows' counts, and read every circuit.

        Waits for one whole pass of the store's writer (and for its pub/sub
        subscription), at most *timeout* seconds. Calls never need this;
        :meth:`close` does it, and tests may.

        Returns:
            Whether it finished in time with the store sharing (see
            :attr:`healthy`).
        """
        seconds = _check_seconds("timeout", timeout, least=0.0, most=3600.0)
        with self._lock:
            if self._closed or not self._threads:
                return False
            self._asked += 1
            target = self._asked
            self._resync_now = True
            self._cond.notify_all()
            finished = self._cond.wait_for(
                lambda: self._closed or (self._done >= target and self._listening),
                seconds,
            )
            return finished and self._healthy and not self._closed

    def close(self, timeout: float = 1.0) -> None:
        """
        Write what is queued (see :meth:`flush`), then stop the threads.

        The breakers go on alone, in process. Probe permits that calls still
        hold are given back, so that the fleet may probe again at once
        rather than after *permit_ttl*; those probes' outcomes stay in this
        process. While it runs, half-open calls that would need a permit are
        refused. Writes that Redis does not take within *timeout* seconds
        are dropped (and a permit granted later lapses). Closing twice is
        harmless.
        """
        seconds = _check_seconds("timeout", timeout, least=0.0, most=3600.0)
        deadline = time.monotonic() + seconds
        with self._lock:
            self._closing = True  # from now on, half-open calls ask no one
            claiming = list(self._claiming)
        if self._healthy:
            # A claim sent already may yet be granted: wait for the replies,
            # so that every permit to give back is known.
            concurrent.futures.wait(claiming, timeout=seconds)
        with self._lock:
            for link, permit in self._held.values():
                self._ops.append((link, ("release", permit, False)))
            self._held.clear()
        if self._healthy:
            self.flush(max(0.0, deadline - time.monotonic()))
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopping.set()
            self._cond.notify_all()
            threads, self._threads = self._threads, []
        self._announcements.put(None)
        for thread in threads:
            # A hook may close the store, on the store's own thread.
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)
        self._claims.shutdown(wait=False, cancel_futures=True)
        self._defer_all()
        with self._lock:  # what Redis did not take in time
            self._dirty.clear()
            self._ops.clear()
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        """Return the store; :meth:`close` runs at the end of the block."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the store."""
        self.close()

    def _renew_after_fork(self) -> None:
        """
        Start afresh in a forked child: own threads, queues and process id.

        The parent writes what it had queued; the child drops it.
        """
        self._start()
        # redis-py makes a forked child's pool anew under the pool's own
        # locks (8.x takes the old one), which a thread of the parent (this
        # store's, say) may have held at the fork, never to release it here.
        pool = self._client.connection_pool
        for lock in ("_lock", "_fork_lock"):
            if hasattr(pool, lock):
                setattr(pool, lock, threading.RLock())
        for links in self._links.values():
            for link in links:
                link.pending = link.inflight = None
                link.counts = [0, 0, 0]
                breaker = link.breaker
                if breaker is not None and link.tallies and not self._closed:
                    # Healthy again as far as the child knows (one thread
                    # here: no lock needed).
                    breaker._machine.deferred = True
        if not self._closed and self._links:
            self._spawn()

    # -- health ----------------------------------------------------------------

    def _usable(self) -> bool:
        return self._healthy and not (self._closing or self._closed)

    def _alone(self) -> bool:
        """
        Whether a half-open call that cannot claim a permit may run.

        Yes while degraded or once closed: its breaker decides alone. Not
        while :meth:`close` runs, whose last writes would share the outcome
        of a probe that the fleet never permitted.
        """
        return self._closed or not self._closing

    def _degraded(self, error: BaseException) -> None:
        """
        Go on alone after *error*; told of once per outage.

        Failures while degraded (each pass's try) are logged once per kind
        of error, so that a cause that changes is seen.
        """
        kind = type(error).__name__
        with self._lock:
            if self._closed:
                return
            first = self._healthy
            if first:
                self._healthy = False
                self._down_since = time.monotonic()
                self._told = set()
            new = kind not in self._told
            self._told.add(kind)
        if first:
            logger.warning(
                "Redis store %r degraded, breakers decide alone: %r",
                self.namespace,
                error,
            )
            emit(
                self._sink,
                StoreDegraded(
                    name=self.namespace, error=f"{type(error).__name__}: {error}"
                ),
            )
        elif new:
            logger.warning(
                "Redis store %r still degraded, now by %r", self.namespace, error
            )
        self._leave_windows(deferred=False)

    def _recovered(self) -> None:
        """Share again: a whole pass of the writer, or a granted claim, went through."""
        with self._lock:
            if self._healthy or self._closed:
                return
            self._healthy = True
            self._resync_now = True
            outage = time.monotonic() - self._down_since
            self._cond.notify()
        logger.info("Redis store %r recovered after %.3fs", self.namespace, outage)
        emit(self._sink, StoreRecovered(name=self.namespace, outage=outage))
        self._leave_windows(deferred=True)

    def _leave_windows(self, *, deferred: bool) -> None:
        """Leave the time windows' verdicts to the fleet, or take them back."""
        with self._lock:
            if self._deferring is deferred or self._closed:
                return
            self._deferring = deferred
        self._defer_all()

    def _defer_all(self) -> None:
        for link in self._all_links():
            self._defer(link)

    @staticmethod
    def _defer(link: _Link) -> None:
        """
        Leave a time window's verdict to the fleet, or take it back.

        As the store stands when the breaker's lock is taken, so that of
        two threads changing it, the later one's choice holds. Only a time
        window's breaker has such a verdict.
        """
        breaker = link.breaker
        if breaker is None or not link.tallies:
            return
        store = link.store

        def update(machine: Machine, now: float) -> Transition | None:
            deferred = store._deferring and not store._closed
            if machine.deferred is not deferred:
                machine.deferred = deferred
                # Counts of the other mode's time are not the fleet's to
                # judge: while down, the process judged them alone; once
                # back, they are too old for the fleet's buckets.
                link.counts = [0, 0, 0]
            return None

        breaker._store_update(update)

    # -- the queue to the writer -----------------------------------------------

    def _wake(self, link: _Link) -> None:
        """Under the breaker's lock: *link* has something to write."""
        with self._lock:
            self._dirty.add(link)
            self._cond.notify()

    def _enqueue(self, link: _Link, op: _Op) -> None:
        with self._lock:
            if self._closed:
                return  # nothing writes it now; a permit lapses in permit_ttl
            self._held.pop(op[1][0], None)
            self._ops.append((link, op))
            self._cond.notify()

    def _hold(self, link: _Link, permit: _Permit) -> None:
        """Record that Redis granted *permit*, until its caller is done with it."""
        with self._lock:
            if self._closed:
                return  # granted after close() gave up waiting: it lapses
            if self._closing:
                self._ops.append((link, ("release", permit, False)))
                self._cond.notify()
            else:
                self._held[permit[0]] = (link, permit)

    def _send_claim(
        self, claim: Callable[[str], _Reply], permit: str
    ) -> concurrent.futures.Future[_Reply] | None:
        """
        Hand a claim to a claim thread, kept until answered for close().

        ``None`` once the store is closing: the breaker's own state decides.
        """
        with self._lock:
            if self._closing or self._closed:
                return None
            try:
                future = self._claims.submit(claim, permit)
            except RuntimeError:  # the interpreter is shutting down
                return None
            self._claiming.add(future)
        # Outside the lock: a claim answered already calls back at once.
        future.add_done_callback(self._untrack)
        return future

    def _untrack(self, claim: concurrent.futures.Future[_Reply]) -> None:
        with self._lock:
            self._claiming.discard(claim)

    def _args(self, link: _Link) -> list[str | float]:
        return [self._channel, link.name, _ms(self.state_ttl)]

    def _run(self, script: str, link: _Link, *args: str | float) -> _Reply:
        """Run one of the scripts on *link*'s circuit, and read its reply."""
        return _parse(
            self._scripts[script](keys=link.keys[:3], args=[*self._args(link), *args])
        )

    # -- the writer ------------------------------------------------------------

    def _write_loop(self) -> None:
        due = [0.0, 0.0]  # the next resync, the next flush of the windows
        while True:
            batch = self._next_batch(due)
            if batch is None:
                return
            dirty, ops, resync, flush, asked = batch
            try:
                if not self._healthy:
                    self._resync()  # tells whether Redis is back
                    resync = False
                    self._check_writes()
                    # Before the windows' counts go: those made while
                    # alone are not the fleet's. Healthy only once the
                    # whole pass has gone through.
                    self._leave_windows(deferred=True)
                for link in dirty:
                    self._write_proposal(link)
                self._write_ops(ops)
                if flush:
                    self._flush_windows()
                if resync:
                    self._resync()
                self._recovered()
            except Exception as error:  # noqa: BLE001 - a store must not break a call
                self._requeue(dirty, ops)
                self._degraded(error)
                self._stopping.wait(_BACKOFF)
            with self._lock:
                self._done = max(self._done, asked)
                self._cond.notify_all()

    def _next_batch(
        self, due: list[float]
    ) -> tuple[set[_Link], list[tuple[_Link, _Op]], bool, bool, int] | None:
        """
        Wait for work, and take it: ``None`` once the store is closed.

        While Redis is down, only the next resync tries it (and tells).
        """
        with self._lock:
            while True:
                now = time.monotonic()
                healthy = self._healthy
                soonest = due[0]
                if healthy and self._windows:
                    soonest = min(soonest, due[1])
                if (
                    self._closed
                    or self._resync_now
                    or now >= soonest
                    or (healthy and (self._dirty or self._ops))
                ):
                    break
                self._cond.wait(soonest - now)
            if self._closed:
                return None
            dirty, self._dirty = self._dirty, set()
            ops, self._ops = self._ops, []
            resync = self._resync_now or now >= due[0]
            self._resync_now = False
            asked = self._asked
            flush = self._windows and (now >= due[1] or asked > self._done)
        if resync:
            due[0] = now + self.resync_interval
        if flush:
            due[1] = now + self.flush_interval
        return dirty, ops, resync, flush, asked

    def _requeue(self, links: set[_Link], ops: list[tuple[_Link, _Op]]) -> None:
        """Keep what a failed pass did not write, for the next one."""
        with self._lock:
            self._dirty |= {link for link in links if link.pending is not None}
            self._ops[:0] = ops

    def _write_proposal(self, link: _Link) -> None:
        breaker = link.breaker
        if breaker is None:
            return
        taken: list[_Proposal] = []

        def take(machine: Machine, now: float) -> Transition | None:
            proposal = link.pending
            if proposal is not None and proposal.base is not None:
                link.pending, link.inflight = None, proposal
                taken.append(proposal)
            return None

        breaker._store_update(take)
        if not taken:
            return
        proposal = taken[0]
        assert proposal.base is not None  # noqa: S101 - only those are taken
        try:
            reply = self._run(
                "propose",
                link,
                proposal.base,
                int(proposal.forced),
                proposal.target,
                proposal.length,
                proposal.probes,
                proposal.reason,
            )
        except BaseException:
            self._put_back(breaker, link, proposal)
            raise
        self._settle(breaker, link, reply)

    @staticmethod
    def _put_back(
        breaker: CircuitBreaker[..., Any], link: _Link, proposal: _Proposal
    ) -> None:
        """Queue a proposal whose write failed again, under any newer one."""

        def put_back(machine: Machine, now: float) -> Transition | None:
            link.inflight = None
            newer = link.pending
            if newer is None:
                link.pending = proposal
            elif newer.base is None:  # decided on top of the one put back
                newer.base = proposal.base
            return None

        breaker._store_update(put_back)

    @staticmethod
    def _settle(breaker: CircuitBreaker[..., Any], link: _Link, reply: _Reply) -> None:
        """
        Settle a proposal written (code 1) or refused.

        Either way, *reply* holds the fleet's state, which is adopted.
        """

        def settle(machine: Machine, now: float) -> Transition | None:
            link.inflight = None
            newer = link.pending
            if newer is not None and newer.base is None:
                if reply[0] == 1 or newer.forced:
                    newer.base = reply[1]  # decided on top of the one written
                else:
                    link.pending = None  # decided on a state the fleet refused
            return None

        breaker._store_update(settle)
        link.take(reply)

    def _write_ops(self, ops: list[tuple[_Link, _Op]]) -> None:
        """Write probe outcomes and releases, taking each off *ops* once written."""
        while ops:
            link, op = ops[0]
            self._write_op(link, op)
            del ops[0]

    def _write_op(self, link: _Link, op: _Op) -> None:
        kind, (token, epoch), failed = op
        if kind == "release":
            self._client.zrem(link.keys[1], token)
            return
        breaker = link.breaker
        if breaker is not None:
            config = breaker.config
            cap = config.max_recovery_timeout
            reply = self._run(
                "probe",
                link,
                epoch,
                token,
                int(failed),
                config.success_threshold,
                _ms(config.recovery_timeout),
                config.recovery_multiplier,
                -1 if cap is None else _ms(cap),
            )
            link.take(reply)

    def _flush_windows(self) -> None:
        for link in self._all_links():
            self._flush_window(link)

    def _flush_window(self, link: _Link) -> None:
        """Send one time window's counts since the last flush."""
        window = link.window
        breaker = link.breaker
        if window is None or breaker is None or window.seconds is None:
            return
        batch: list[tuple[int, list[int]]] = []

        def take(machine: Machine, now: float) -> Transition | None:
            if link.counts[0] and link.counts_epoch == link.epoch:
                batch.append((link.epoch, link.counts))
            link.counts = [0, 0, 0]
            return None

        breaker._store_update(take)
        if not batch:
            return
        epoch, (calls, failures, slow) = batch[0]
        config = breaker.config
        reply = self._run(
            "window",
            link,
            epoch,
            self._process,
            calls,
            failures,
            slow,
            _ms(window.seconds / TIME_BUCKETS),
            TIME_BUCKETS,
            window.minimum_calls,
            -1.0 if window.failure_rate is None else window.failure_rate,
            -1.0 if window.slow_call_rate is None else window.slow_call_rate,
            self.quorum,
            _ms(config.recovery_timeout),
        )
        link.take(reply)

    def _resync(self) -> None:
        """Read every circuit again: adopt what changed, restore what vanished."""
        links = self._all_links()
        if not links:
            self._client.ping()
            return
        try:
            raws = self._read_all(links)
        except NoScriptError:  # a new or restarted server, or SCRIPT FLUSH
            self._client.script_load(READ)
            raws = self._read_all(links)
        replies = [_parse(raw) for raw in raws]
        for link, reply in zip(links, replies, strict=True):
            breaker = link.breaker
            if breaker is None:
                continue
            if reply[0] == 1:
                link.take(reply)
                continue
            self._restore(breaker, link)
        unchecked = [link for link in links if not link.config_checked]
        if unchecked:
            self._check_configs(unchecked)

    def _check_writes(self) -> None:
        """
        Write to Redis, or raise.

        Out of memory or read-only, Redis answers reads and refuses every
        write, so a resync alone does not tell that it is back.
        """
        links = self._all_links()
        if links:
            # A key of a circuit's own: in the slot, and under the names (an
            # ACL's "aiobreakers:{ns:*"), that the store's other writes use.
            self._client.set(links[0].keys[4], self._process, px=_ALIVE_MS)

    def _read_all(self, links: list[_Link]) -> list[Any]:
        """
        Run the read script on every circuit, in one round trip.

        A script run through a pipeline would cost one more: redis-py asks
        the server first whether it has the script.
        """
        pipe = self._client.pipeline(transaction=False)
        sha = self._scripts["read"].sha
        for link in links:
            pipe.evalsha(sha, 3, *link.keys[:3], *self._args(link))
        return pipe.execute()

    def _check_configs(self, links: list[_Link]) -> None:
        """
        Warn, once per breaker, of a circuit shared with another configuration.

        Each process joining a circuit compares what its judgements rest on
        with what the last one to join left in Redis, and leaves its own
        (kept ``state_ttl``): mixed thresholds would mix the fleet's
        judgements without a word. After a change of configuration rolled
        out, the processes that joined since agree again.
        """
        pipe = self._client.pipeline(transaction=False)
        for link in links:
            pipe.get(link.keys[3])
            pipe.set(link.keys[3], link.config, px=_ms(self.state_ttl))
        theirs = pipe.execute()[0::2]
        for link, raw in zip(links, theirs, strict=True):
            link.config_checked = True
            found = raw.decode() if isinstance(raw, bytes) else raw
            if found is not None and found != link.config:
                logger.warning(
                    "breaker %r of Redis store %r shares its circuit with a"
                    " process configured otherwise (%s; here: %s): the fleet's"
                    " judgements mix both; give every process the same"
                    " BreakerConfig",
                    link.name,
                    self.namespace,
                    found,
                    link.config,
                )

    def _restore(self, breaker: CircuitBreaker[..., Any], link: _Link) -> None:
        """
        Write back the state of a circuit whose keys are gone.

        Only an open (or half-open) one: a missing circuit is closed.
        """
        lost: list[tuple[int, int, int, int]] = []

        def check(machine: Machine, now: float) -> Transition | None:
            if link.pending is not None or link.inflight is not None:
                return None  # the proposal writes the state back itself
            if link.diverged and not self._healthy:
                return None  # its own verdict, until the store shares again
            spell = machine.spell
            if spell.state is CLOSED or link.diverged:
                link.epoch = 0  # any circuit made anew is newer
                if link.diverged:  # its own verdict: the fleet's is closed
                    link.diverged = False
                    change = machine.adopt(CLOSED, now)
                    if change is not None:
                        link.news.append(change)
                    return change
                return None
            left = machine.retry_after(now) if spell.state is OPEN else 0.0
            lost.append(
                (link.epoch, _ms(left), _ms(spell.length), machine.failed_probes)
            )
            return None

        if breaker._store_update(check, announce=False) is not None:
            self._announce(link)
        if not lost:
            return
        epoch, left, length, probes = lost[0]
        link.take(self._run("restore", link, epoch, left, length, probes))

    # -- the announcer ---------------------------------------------------------

    def _announce(self, link: _Link) -> None:
        """Have the announcer tell of *link*'s news."""
        self._announcements.put(link)

    def _announce_loop(self) -> None:
        """Tell hooks and sinks of the fleet's changes, in order, per breaker."""
        while (link := self._announcements.get()) is not None:
            breaker = link.breaker
            if breaker is None:
                continue
            try:
                link.tell(breaker)
            except BaseException:  # noqa: BLE001 - hooks catch Exception; not this thread
                logger.exception(
                    "Redis store %r: telling of a change of %r failed",
                    self.namespace,
                    link.name,
                )

    # -- the listener ----------------------------------------------------------

    def _listen_loop(self) -> None:
        stopping = self._stopping
        while not stopping.is_set():
            pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self._channel)
                while not stopping.is_set():
                    # Short: close() waits for the thread to see it.
                    message = pubsub.get_message(timeout=0.05)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        self._on_message(message["data"])
                    elif message["type"] == "subscribe":
                        with self._lock:
                            self._listening = True
                            self._resync_now = True  # what was missed meanwhile
                            self._cond.notify_all()
            except Exception as error:  # noqa: BLE001 - a store must not break a call
                with self._lock:
                    self._listening = False
                self._degraded(error)
                stopping.wait(_BACKOFF)
            finally:
                with contextlib.suppress(Exception):  # a dead connection's close
                    pubsub.close()

    def _on_message(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        try:
            name, epoch, state, left, length, failed, _reason = text.split(" ")
            reply: _Reply = (1, int(epoch), state, int(left), int(length), int(failed))
            CircuitState(state)
        except ValueError:
            logger.warning(
                "Redis store %r ignored a malformed message %r", self.namespace, text
            )
            return
        with self._lock:
            links = list(self._links.get(name, ()))
        for link in links:
            link.take(reply)


publish(__name__, globals())
