"""
Exact counts and consistent metrics while threads race under tracers.

Version 0.1.0 counted healthy calls without a lock, trusting that CPython only
switches threads at calls and backward jumps. A tracer breaks that trust: with
``sys.settrace`` and ``frame.f_trace_opcodes`` (or ``sys.monitoring``
INSTRUCTION events) the interpreter runs a Python callback between any two
opcodes, and may switch threads there, in the middle of ``count += 1``. These
tests hammer one breaker and one retry policy from several threads under such
tracers, with the switch interval at its smallest, and demand that every
count, and every metrics snapshot taken meanwhile, is exact.

Only the public API is used. No test sleeps: threads meet at a barrier, time
is a :class:`FakeClock` (or the real monotonic clock, only read), and retries
wait zero seconds.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import math
import os
import sys
import threading
from collections import Counter
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import pytest

from aiobreakers import (
    BreakerConfig,
    CircuitBreaker,
    RateWindow,
    RetryConfig,
    RetryPolicy,
    set_defaults,
)
from aiobreakers.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from collections.abc import Set as AbstractSet
    from types import FrameType

    from aiobreakers import BreakerMetrics, Clock, RetryMetrics

WORKERS: Final = 6
# Loop turns per worker, each making two to four calls. Python 3.10 runs a
# trace function several times slower than 3.11 does: half as many keep the
# file's run time alike.
CALLS: Final = 400 if sys.version_info >= (3, 11) else 200
MAX_RETRIES: Final = 2
LIBRARY: Final = "aiobreakers"
WAIT: Final = 60.0  # seconds a barrier or join waits before the test fails
# The shortest switch interval the interpreter honours (a microsecond): a thread
# that waits for the GIL asks for it back almost at once.
SWITCH_INTERVAL: Final = 1e-6

Tracer = Literal["line", "opcode"]
BreakerOp = Literal["decorated", "call_sync", "block", "excluded", "failure"]
RetryOp = Literal[
    "ok", "ok_call_sync", "flaky", "flaky_call_sync", "exhausted", "fatal"
]

Op = TypeVar("Op", bound=str)


class OutageError(ConnectionError):
    """The dependency is down: a failure for breakers, retryable for policies."""


class BenignError(ValueError):
    """The dependency answered with an error: excluded, so a breaker's success."""


class FatalError(KeyError):
    """An error no policy retries."""


# -- races -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fast_switching() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def trace_function(tracer: Tracer) -> Callable[[FrameType, str, Any], Any]:
    """
    Return a global trace function that traces every line or every opcode.

    The interpreter may switch threads in each call of the trace function,
    that is between any two lines or opcodes of a traced frame. Every frame
    is traced but this module's own: tracing the workers' loops too would
    spend their share of the switches outside the library, which matters on
    a busy machine, where the operating system rather than the switch
    interval decides how often threads switch.
    """

    def local(frame: FrameType, event: str, arg: object) -> object:
        return local

    def global_(frame: FrameType, event: str, arg: object) -> object:
        if frame.f_code.co_filename == __file__:
            return None
        if tracer == "opcode":
            frame.f_trace_opcodes = True
        return local

    return global_


@contextlib.contextmanager
def settrace(tracer: Tracer) -> Iterator[None]:
    """Trace this thread and every thread started in the block."""
    function = trace_function(tracer)
    previous_thread = threading.gettrace()
    previous_here = sys.gettrace()
    threading.settrace(function)
    sys.settrace(function)
    try:
        yield
    finally:
        sys.settrace(previous_here)
        threading.settrace(previous_thread)


@contextlib.contextmanager
def pinned(index: int) -> Iterator[None]:
    """
    Keep the calling thread on one CPU, the *index*-th allowed, round robin.

    Left alone, Linux often gathers threads that pass the GIL to one another
    on one CPU (it likes to wake a thread where its waker runs). There, a
    thread waiting for the GIL cannot ask for it until the holder's time slice
    ends, and in many runs threads switched a few hundred times a second
    instead of thousands: too seldom for a lost update to show. Spread over
    the CPUs, they keep switching fast. Elsewhere, or on one CPU, this does
    nothing.
    """
    if sys.platform != "linux":  # pragma: no cover - CI runs on Linux
        yield
        return
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:  # pragma: no cover - nothing to spread over
        yield
        return
    os.sched_setaffinity(0, {sorted(allowed)[index % len(allowed)]})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def race(
    workers: Sequence[Callable[[], None]],
    tracing: contextlib.AbstractContextManager[None],
    observers: Sequence[Callable[[threading.Event], None]] = (),
) -> None:
    """
    Run *workers* in threads at once under *tracing*; re-raise their errors.

    Each of *observers* runs in a thread of its own from the same start until
    the workers are done, which the event it receives tells.
    """
    done = threading.Event()
    barrier = threading.Barrier(len(workers) + len(observers))
    errors: list[BaseException] = []

    def run(index: int, work: Callable[[], None]) -> None:
        try:
            with pinned(index):
                barrier.wait(WAIT)
                work()
        except BaseException as error:  # re-raised by the main thread
            errors.append(error)
            barrier.abort()

    def thread(index: int, work: Callable[[], None]) -> threading.Thread:
        return threading.Thread(
            target=run, args=(index, work), name=f"exactness-{index}"
        )

    threads = [thread(i, work) for i, work in enumerate(workers)]
    watchers = [
        thread(len(workers) + i, functools.partial(observe, done))
        for i, observe in enumerate(observers)
    ]
    with tracing:
        for each in (*threads, *watchers):
            each.start()
        for each in threads:
            each.join(WAIT)
        done.set()
        for each in watchers:
            each.join(WAIT)
    hung = [each.name for each in (*threads, *watchers) if each.is_alive()]
    assert not hung, f"threads hung: {hung}"
    if errors:
        raise errors[0]


# -- what the workers do -----------------------------------------------------


def breaker_plan(worker: int, calls: int = CALLS) -> list[BreakerOp]:
    """Return the calls one worker makes through the breaker, in order."""
    plan: list[BreakerOp] = []
    for turn in range(calls):
        plan += ["decorated", "call_sync"]
        if turn % 5 == 0:
            plan.append("excluded" if worker % 2 == 0 else "failure")
        if turn % 20 == 0:
            plan.append("block")
    return plan


def expected_breaker_counts(plans: Sequence[Sequence[BreakerOp]]) -> dict[str, int]:
    """Return the totals a breaker owes for *plans*."""
    ops = Counter(itertools.chain.from_iterable(plans))
    failures = ops["failure"]
    successes = sum(ops.values()) - failures
    return {
        "total_calls": successes + failures,
        "total_successes": successes,
        "total_failures": failures,
        "total_rejected": 0,
        "total_trips": 0,
    }


def breaker_counts(metrics: BreakerMetrics) -> dict[str, int]:
    """Return the counters of a breaker snapshot."""
    return {
        "total_calls": metrics["total_calls"],
        "total_successes": metrics["total_successes"],
        "total_failures": metrics["total_failures"],
        "total_rejected": metrics["total_rejected"],
        "total_trips": metrics["total_trips"],
    }


def plain(value: int) -> int:
    """Return *value*: unprotected, for call_sync."""
    return value


def checked_caller(
    calls: Mapping[Op, Callable[[int], int]], raising: AbstractSet[Op]
) -> Callable[[int, Op], None]:
    """
    Return a function that makes the call *calls* name for an op, and checks it.

    An op in *raising* must raise the value it was given, wrapped in one of
    this module's errors; any other op must return it.
    """

    def call(turn: int, op: Op) -> None:
        try:
            result = calls[op](turn)
        except (BenignError, OutageError, FatalError) as error:
            if op not in raising:
                raise
            result = error.args[0]
        else:
            if op in raising:
                raise AssertionError(f"{op} returned {result!r}")
        if result != turn:
            raise AssertionError(f"{op} gave {result!r}, not {turn!r}")

    return call


def breaker_caller(
    breaker: CircuitBreaker[..., Any],
) -> Callable[[int, BreakerOp], None]:
    """Return a function that makes one call of a plan through *breaker*."""

    @breaker
    def decorated(value: int) -> int:
        return value

    @breaker
    def benign(value: int) -> int:
        raise BenignError(value)

    @breaker
    def broken(value: int) -> int:
        raise OutageError(value)

    def in_block(value: int) -> int:
        with breaker:
            return plain(value)

    return checked_caller(
        {
            "decorated": decorated,
            "call_sync": lambda value: breaker.call_sync(plain, value),
            "block": in_block,
            "excluded": benign,
            "failure": broken,
        },
        raising={"excluded", "failure"},
    )


def breaker_worker(
    breaker: CircuitBreaker[..., Any], plan: Sequence[BreakerOp]
) -> Callable[[], None]:
    """Return a worker that makes the calls of *plan* through *breaker*."""
    call = breaker_caller(breaker)

    def work() -> None:
        for turn, op in enumerate(plan):
            call(turn, op)

    return work


class FailsEveryOther:
    """A dependency whose attempts fail and succeed in turn: one retry a call."""

    def __init__(self) -> None:
        self.failed = False

    def __call__(self, value: int) -> int:
        self.failed = not self.failed
        if self.failed:
            raise OutageError(value)
        return value


def retry_plan(worker: int, calls: int = CALLS) -> list[RetryOp]:
    """Return the calls one worker makes through the retry policy, in order."""
    plan: list[RetryOp] = []
    for turn in range(calls):
        plan += (
            ["ok", "flaky"] if turn % 2 == 0 else ["ok_call_sync", "flaky_call_sync"]
        )
        if turn % 10 == 0:
            plan.append("exhausted" if worker % 2 == 0 else "fatal")
    return plan


def expected_retry_counts(plans: Sequence[Sequence[RetryOp]]) -> dict[str, int]:
    """Return the totals a retry policy with MAX_RETRIES owes for *plans*."""
    ops = Counter(itertools.chain.from_iterable(plans))
    flaky = ops["flaky"] + ops["flaky_call_sync"]
    successes = ops["ok"] + ops["ok_call_sync"] + flaky
    failures = ops["exhausted"] + ops["fatal"]
    return {
        "total_calls": successes + failures,
        "total_successes": successes,
        "total_failures": failures,
        "total_retries": flaky + MAX_RETRIES * ops["exhausted"],
        "total_exhausted": ops["exhausted"],
    }


def retry_counts(metrics: RetryMetrics) -> dict[str, int]:
    """Return the counters of a retry policy snapshot."""
    return {
        "total_calls": metrics["total_calls"],
        "total_successes": metrics["total_successes"],
        "total_failures": metrics["total_failures"],
        "total_retries": metrics["total_retries"],
        "total_exhausted": metrics["total_exhausted"],
    }


def make_policy() -> RetryPolicy:
    """Return a policy that retries outages at once, twice at most."""
    return RetryPolicy(
        "exactness",
        RetryConfig(
            max_retries=MAX_RETRIES,
            base_delay=0,
            max_delay=0,
            retryable_exceptions=(OutageError,),
        ),
    )


def retry_caller(policy: RetryPolicy) -> Callable[[int, RetryOp], None]:
    """Return a function that makes one call of a plan through *policy*."""
    flip = FailsEveryOther()  # one per caller: each worker has its own

    @policy
    def ok(value: int) -> int:
        return value

    @policy
    def flaky(dependency: FailsEveryOther, value: int) -> int:
        return dependency(value)

    @policy
    def down(value: int) -> int:
        raise OutageError(value)

    @policy
    def fatal(value: int) -> int:
        raise FatalError(value)

    return checked_caller(
        {
            "ok": ok,
            "ok_call_sync": lambda value: policy.call_sync(plain, value),
            "flaky": lambda value: flaky(flip, value),
            "flaky_call_sync": lambda value: policy.call_sync(flip, value),
            "exhausted": down,
            "fatal": fatal,
        },
        raising={"exhausted", "fatal"},
    )


def retry_worker(policy: RetryPolicy, plan: Sequence[RetryOp]) -> Callable[[], None]:
    """Return a worker that makes the calls of *plan* through *policy*."""
    call = retry_caller(policy)

    def work() -> None:
        for turn, op in enumerate(plan):
            call(turn, op)

    return work


def both_worker(
    breaker: CircuitBreaker[..., Any],
    breaker_ops: Sequence[BreakerOp],
    policy: RetryPolicy,
    retry_ops: Sequence[RetryOp],
) -> Callable[[], None]:
    """Return a worker that takes turns at a breaker plan and a retry plan."""
    on_breaker = breaker_caller(breaker)
    on_policy = retry_caller(policy)

    def work() -> None:
        pairs = itertools.zip_longest(breaker_ops, retry_ops)
        for turn, (breaker_op, retry_op) in enumerate(pairs):
            if breaker_op is not None:
                on_breaker(turn, breaker_op)
            if retry_op is not None:
                on_policy(turn, retry_op)

    return work


# -- clocks ------------------------------------------------------------------

ClockCase = Literal["default-fake-clock", "injected-fake-clock", "system-clock"]


@pytest.fixture(params=["default-fake-clock", "injected-fake-clock", "system-clock"])
def breaker_clock(request: pytest.FixtureRequest) -> Iterator[Clock | None]:
    """
    The clock to inject into a breaker (``None``: the process-wide default).

    Each case may take its own path through a breaker: a process-wide fake
    clock, a fake clock of the breaker's own, and the process-wide real clock
    (which a breaker may read for a sample of calls only). Counts must be
    exact on every path.
    """
    case: ClockCase = request.param
    previous = set_defaults(clock=FakeClock() if case == "default-fake-clock" else None)
    try:
        yield FakeClock() if case == "injected-fake-clock" else None
    finally:
        set_defaults(clock=previous.clock)


def never_opens(clock: Clock | None = None) -> CircuitBreaker[..., Any]:
    """Return a breaker whose failure threshold no test reaches."""
    return CircuitBreaker(
        "exactness",
        BreakerConfig(failure_threshold=10**9, excluded_exceptions=(BenignError,)),
        clock=clock,
    )


# -- snapshots ---------------------------------------------------------------


def never_decrease(
    snapshots: Sequence[dict[str, int]],
) -> list[tuple[str, int, int, int]]:
    """Return (counter, snapshot index, before, after) for every counter drop."""
    return [
        (key, index + 1, before[key], after[key])
        for index, (before, after) in enumerate(itertools.pairwise(snapshots))
        for key in before
        if after[key] < before[key]
    ]


def miscounts(
    what: str, actual: Mapping[str, int], expected: Mapping[str, int]
) -> list[str]:
    """Describe every counter of *actual* that differs from *expected*."""
    problems = []
    for key, owed in expected.items():
        got = actual[key]
        if got < owed:
            problems.append(f"{what} {key}: {got}, lost {owed - got} of {owed}")
        elif got > owed:
            problems.append(f"{what} {key}: {got}, {got - owed} more than {owed}")
    return problems


def breaker_snapshot_problems(snapshots: Sequence[BreakerMetrics]) -> list[str]:
    """Describe how breaker snapshots are torn, off or go backwards."""
    problems = []
    torn = [
        s
        for s in snapshots
        if s["total_calls"] != s["total_successes"] + s["total_failures"]
    ]
    if torn:
        problems.append(f"{len(torn)} of {len(snapshots)} breaker snapshots torn")
    off = [
        s
        for s in snapshots
        if s["total_calls"]
        and not math.isclose(s["success_rate"] + s["failure_rate"], 1.0)
    ]
    if off:
        problems.append(f"{len(off)} breaker snapshots' rates do not add up to 1")
    if not_closed := [s["state"] for s in snapshots if s["state"] != "closed"]:
        problems.append(f"breaker snapshots not closed: {sorted(set(not_closed))}")
    if drops := never_decrease([breaker_counts(s) for s in snapshots]):
        problems.append(f"{len(drops)} breaker counter drops, first: {drops[0]}")
    return problems


def retry_snapshot_problems(snapshots: Sequence[RetryMetrics]) -> list[str]:
    """Describe how retry policy snapshots are torn or go backwards."""
    problems = []
    torn = [
        s
        for s in snapshots
        if s["total_calls"] != s["total_successes"] + s["total_failures"]
        or s["total_exhausted"] > s["total_failures"]
    ]
    if torn:
        first = retry_counts(torn[0])
        problems.append(
            f"{len(torn)} of {len(snapshots)} retry snapshots torn, first: {first}"
        )
    if drops := never_decrease([retry_counts(s) for s in snapshots]):
        problems.append(f"{len(drops)} retry counter drops, first: {drops[0]}")
    return problems


# -- tests -------------------------------------------------------------------


def test_breaker_counts_are_exact_under_an_opcode_tracer(
    breaker_clock: Clock | None,
) -> None:
    """Racing threads under an opcode tracer lose no breaker count."""
    breaker = never_opens(breaker_clock)
    plans = [breaker_plan(worker) for worker in range(WORKERS)]
    race([breaker_worker(breaker, plan) for plan in plans], settrace("opcode"))
    metrics = breaker.get_metrics()
    problems = miscounts(
        "breaker", breaker_counts(metrics), expected_breaker_counts(plans)
    )
    assert not problems, "\n".join(problems)
    assert metrics["state"] == "closed"


def test_retry_counts_are_exact_under_an_opcode_tracer(fake_clock: FakeClock) -> None:
    """Racing threads under an opcode tracer lose no retry policy count."""
    policy = make_policy()
    plans = [retry_plan(worker) for worker in range(WORKERS)]
    race([retry_worker(policy, plan) for plan in plans], settrace("opcode"))
    metrics = policy.get_metrics()
    problems = miscounts("retry", retry_counts(metrics), expected_retry_counts(plans))
    assert not problems, "\n".join(problems)
    assert fake_clock.sleeps == []  # zero delays never sleep


@pytest.mark.parametrize("tracer", ["line", "opcode"])
def test_snapshots_are_consistent_while_threads_race(
    fake_clock: FakeClock, tracer: Tracer
) -> None:
    """Every metrics snapshot taken mid-race is whole and never goes backwards."""
    breaker = never_opens()
    policy = make_policy()
    breaker_plans = [breaker_plan(w, CALLS // 2) for w in range(WORKERS)]
    retry_plans = [retry_plan(w, CALLS // 2) for w in range(WORKERS)]
    breaker_snapshots: list[BreakerMetrics] = []
    retry_snapshots: list[RetryMetrics] = []

    # An observer each: alone in its loop, the policy's observer is far more
    # often switched out inside get_metrics.
    def observe_breaker(done: threading.Event) -> None:
        while not done.is_set():
            breaker_snapshots.append(breaker.get_metrics())

    def observe_policy(done: threading.Event) -> None:
        while not done.is_set():
            retry_snapshots.append(policy.get_metrics())

    workers = [
        both_worker(breaker, b_ops, policy, r_ops)
        for b_ops, r_ops in zip(breaker_plans, retry_plans, strict=True)
    ]
    race(workers, settrace(tracer), [observe_breaker, observe_policy])
    breaker_snapshots.append(breaker.get_metrics())
    retry_snapshots.append(policy.get_metrics())

    assert len(breaker_snapshots) > 10, "the breaker's observer barely ran"
    assert len(retry_snapshots) > 10, "the policy's observer barely ran"
    problems = [
        *breaker_snapshot_problems(breaker_snapshots),
        *retry_snapshot_problems(retry_snapshots),
        *miscounts(
            "breaker",
            breaker_counts(breaker_snapshots[-1]),
            expected_breaker_counts(breaker_plans),
        ),
        *miscounts(
            "retry",
            retry_counts(retry_snapshots[-1]),
            expected_retry_counts(retry_plans),
        ),
    ]
    assert not problems, "\n".join(problems)


def library_code() -> set[CodeType]:
    """
    Return the code of every function of the library alive now, nested too.

    Found through the garbage collector rather than the modules, so that the
    wrappers the library makes for decorated functions are found as well.
    """
    found: set[CodeType] = set()
    pending = [
        each.__code__
        for each in gc.get_objects()
        if isinstance(each, FunctionType)
        and str(each.__module__).partition(".")[0] == LIBRARY
    ]
    while pending:
        code = pending.pop()
        if code not in found:
            found.add(code)
            pending += [c for c in code.co_consts if isinstance(c, CodeType)]
    return found


@contextlib.contextmanager
def instruction_events() -> Iterator[None]:
    """
    Deliver a sys.monitoring INSTRUCTION event for each instruction of the library.

    The code of the library, as made by the time the block starts, is
    monitored: the workers' loops would only dilute it, as for
    :func:`settrace`. The interpreter may switch threads in each call of the
    callback, that is between any two instructions of the library.
    """
    if sys.version_info < (3, 12):  # pragma: no cover - the test skips first
        raise RuntimeError("sys.monitoring needs Python 3.12")
    monitoring = sys.monitoring
    # Ids 0 to 5 exist; debuggers, coverage, profilers and optimizers
    # conventionally take 0, 1, 2 and 5, so 3 and 4 come first.
    free = [i for i in (3, 4, 0, 1, 2, 5) if monitoring.get_tool(i) is None]
    if not free:  # pragma: no cover - every tool id taken
        pytest.skip("no free sys.monitoring tool id")
    tool = free[0]
    instruction = monitoring.events.INSTRUCTION
    codes = library_code()

    def on_instruction(code: CodeType, offset: int) -> None:
        """Return None, not DISABLE: keep the events coming."""

    monitoring.use_tool_id(tool, "aiobreakers-exactness")
    try:
        monitoring.register_callback(tool, instruction, on_instruction)
        for code in codes:
            monitoring.set_local_events(tool, code, instruction)
        yield
    finally:
        for code in codes:
            monitoring.set_local_events(tool, code, monitoring.events.NO_EVENTS)
        monitoring.register_callback(tool, instruction, None)
        monitoring.free_tool_id(tool)


@pytest.mark.skipif(
    sys.version_info < (3, 12),
    reason="sys.monitoring INSTRUCTION events (PEP 669) are new in Python 3.12",
)
def test_counts_are_exact_under_sys_monitoring(
    breaker_clock: Clock | None,
) -> None:
    """Racing threads under sys.monitoring INSTRUCTION events lose no count."""
    breaker = never_opens(breaker_clock)
    policy = make_policy()
    breaker_plans = [breaker_plan(w) for w in range(WORKERS)]
    retry_plans = [retry_plan(w, CALLS // 2) for w in range(WORKERS)]
    workers = [
        both_worker(breaker, b_ops, policy, r_ops)
        for b_ops, r_ops in zip(breaker_plans, retry_plans, strict=True)
    ]
    race(workers, instruction_events())
    metrics = breaker.get_metrics()
    problems = [
        *miscounts(
            "breaker", breaker_counts(metrics), expected_breaker_counts(breaker_plans)
        ),
        *miscounts(
            "retry",
            retry_counts(policy.get_metrics()),
            expected_retry_counts(retry_plans),
        ),
    ]
    assert not problems, "\n".join(problems)
    assert metrics["state"] == "closed"


def test_full_rate_window_never_trips_on_successes(fake_clock: FakeClock) -> None:
    """A full 100%-failure-rate window stays closed under successes, counts exact."""
    breaker = CircuitBreaker(
        "exactness-window",
        BreakerConfig(
            trip=RateWindow(calls=50, minimum_calls=50, failure_rate=1.0),
            excluded_exceptions=(BenignError,),
        ),
    )
    # Even workers' "excluded" calls raise BenignError: successes too.
    plans = [breaker_plan(worker) for worker in range(0, 2 * WORKERS, 2)]
    race([breaker_worker(breaker, plan) for plan in plans], settrace("opcode"))
    metrics = breaker.get_metrics()
    problems = miscounts(
        "breaker", breaker_counts(metrics), expected_breaker_counts(plans)
    )
    assert not problems, "\n".join(problems)
    assert metrics["total_failures"] == 0
    assert metrics["state"] == "closed"
    assert metrics["window_calls"] == 50
    assert metrics["window_failure_rate"] == 0.0
