"""The circuit breaker's behaviour through its public API."""

from __future__ import annotations

import inspect
import logging
import pickle
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from aiobreakers import (
    BreakerConfig,
    CallFailed,
    CallRejected,
    CallSucceeded,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Event,
    HookFailed,
    StateChanged,
)
from aiobreakers.testing import Spy

if TYPE_CHECKING:
    from aiobreakers.testing import FakeClock

pytestmark = pytest.mark.anyio


def make(
    clock: FakeClock, sink: Spy | None = None, **config: Any
) -> CircuitBreaker[..., Any]:
    return CircuitBreaker("api", BreakerConfig(**config), clock=clock, sink=sink)


def ok() -> str:
    return "ok"


def boom() -> None:
    raise ConnectionError("down")


def fail(breaker: CircuitBreaker[..., Any], times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(ConnectionError):
            breaker.call_sync(boom)


# -- closed -------------------------------------------------------------------


def test_closed_breaker_passes_calls_and_results(clock: FakeClock) -> None:
    """A closed breaker runs the call and returns its result."""
    breaker = make(clock)
    assert breaker.call_sync(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_consecutive_failures_trip_at_the_threshold(clock: FakeClock) -> None:
    """Exactly failure_threshold consecutive failures open the circuit."""
    breaker = make(clock, failure_threshold=3)
    fail(breaker, 2)
    assert breaker.state == "closed"
    fail(breaker)
    assert breaker.state == "open"


def test_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    """A success between failures starts the count again."""
    breaker = make(clock, failure_threshold=3)
    fail(breaker, 2)
    breaker.call_sync(ok)
    fail(breaker, 2)
    assert breaker.state == "closed"


# -- open ---------------------------------------------------------------------


def test_open_breaker_rejects_without_calling(clock: FakeClock) -> None:
    """An open circuit raises CircuitOpenError and never runs the call."""
    breaker = make(clock, failure_threshold=1, recovery_timeout=30)
    fail(breaker)
    calls: list[int] = []
    clock.advance(10)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call_sync(calls.append, 1)
    assert calls == []
    assert info.value.name == "api"
    assert info.value.retry_after == 20.0
    assert str(info.value) == "circuit 'api' is open; retry after 20.000s"


def test_circuit_open_error_pickles() -> None:
    """CircuitOpenError survives pickling with its attributes."""
    error = pickle.loads(pickle.dumps(CircuitOpenError("db", 1.5)))  # noqa: S301
    assert (error.name, error.retry_after, error.state) == ("db", 1.5, "open")


def test_open_becomes_half_open_lazily_on_state_read(clock: FakeClock) -> None:
    """After recovery_timeout, the next state read finds the circuit half-open."""
    breaker = make(clock, failure_threshold=1, recovery_timeout=30)
    fail(breaker)
    clock.advance(29.9)
    assert breaker.state == "open"
    clock.advance(0.1)
    assert breaker.state == "half_open"


def test_rejections_are_counted_apart_from_calls(clock: FakeClock) -> None:
    """Rejected calls count in total_rejected, not in total_calls."""
    breaker = make(clock, failure_threshold=1)
    fail(breaker)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            breaker.call_sync(ok)
    metrics = breaker.get_metrics()
    assert (metrics["total_calls"], metrics["total_rejected"]) == (1, 3)


# -- half-open ----------------------------------------------------------------


def open_then_wait(clock: FakeClock, **config: Any) -> CircuitBreaker[..., Any]:
    breaker = make(clock, failure_threshold=1, recovery_timeout=10, **config)
    fail(breaker)
    clock.advance(10)
    return breaker


def test_probe_successes_close_the_circuit(clock: FakeClock) -> None:
    """success_threshold successful probes close the circuit."""
    breaker = open_then_wait(clock, success_threshold=2)
    breaker.call_sync(ok)
    assert breaker.state == "half_open"
    breaker.call_sync(ok)
    assert breaker.state == "closed"


def test_probe_failure_reopens_with_a_new_window(clock: FakeClock) -> None:
    """A failed probe re-opens the circuit for a full recovery_timeout."""
    breaker = open_then_wait(clock, success_threshold=2)
    breaker.call_sync(ok)
    fail(breaker)
    assert breaker.state == "open"
    metrics = breaker.get_metrics()
    assert metrics["total_trips"] == 2
    assert metrics["time_until_recovery"] == 10.0


def test_closing_resets_the_failure_count(clock: FakeClock) -> None:
    """After closing, it takes failure_threshold new failures to trip again."""
    breaker = make(clock, failure_threshold=2, recovery_timeout=1, success_threshold=1)
    fail(breaker, 2)
    clock.advance(1)
    breaker.call_sync(ok)
    fail(breaker)
    assert breaker.state == "closed"


async def test_half_open_admits_at_most_max_calls(clock: FakeClock) -> None:
    """Concurrent probes beyond half_open_max_calls are rejected."""
    breaker = open_then_wait(clock, half_open_max_calls=2, success_threshold=5)
    release = anyio.Event()
    results: list[str] = []

    async def probe() -> str:
        await release.wait()
        return "ok"

    async def call() -> None:
        results.append(await breaker.call_async(probe))

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        group.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(CircuitOpenError) as info:
            await breaker.call_async(probe)
        assert info.value.state == "half_open"
        assert info.value.retry_after == 0.0
        release.set()
    assert results == ["ok", "ok"]
    assert await breaker.call_async(probe) == "ok"


async def test_probes_of_an_earlier_spell_still_hold_their_slot(
    clock: FakeClock,
) -> None:
    """A probe still running after the circuit re-opened keeps its slot."""
    breaker = open_then_wait(clock)
    release = anyio.Event()
    results: list[str] = []

    async def slow() -> str:
        await release.wait()
        return "late"

    async def slow_probe() -> None:
        results.append(await breaker.call_async(slow))

    async with anyio.create_task_group() as group:
        group.start_soon(slow_probe)
        await anyio.wait_all_tasks_blocked()
        breaker.trip()
        clock.advance(10)
        assert breaker.state == "half_open"
        with pytest.raises(CircuitOpenError):
            breaker.call_sync(ok)
        release.set()
    assert results == ["late"]
    assert breaker.state == "half_open", "a late result must not move the state"
    assert breaker.call_sync(ok) == "ok"


def test_late_result_updates_totals_but_not_the_state(clock: FakeClock) -> None:
    """A call admitted while closed that fails after a trip does not re-trip."""
    breaker = make(clock, failure_threshold=1, recovery_timeout=5)
    with pytest.raises(ConnectionError), breaker:
        breaker.trip()
        clock.advance(5)
        assert breaker.state == "half_open"
        raise ConnectionError
    assert breaker.state == "half_open"
    metrics = breaker.get_metrics()
    assert (metrics["total_failures"], metrics["total_trips"]) == (1, 1)


# -- what counts --------------------------------------------------------------


def test_included_exceptions_limit_what_counts(clock: FakeClock) -> None:
    """With included_exceptions, other exceptions are successes and re-raised."""
    breaker = make(clock, failure_threshold=1, included_exceptions=(TimeoutError,))

    def bad_input() -> None:
        raise ValueError

    with pytest.raises(ValueError):
        breaker.call_sync(bad_input)
    assert breaker.state == "closed"
    assert breaker.get_metrics()["total_successes"] == 1
    fail(breaker)  # ConnectionError is not included either
    assert breaker.state == "closed"


def test_excluded_exceptions_never_count(clock: FakeClock) -> None:
    """excluded_exceptions win over included_exceptions."""
    breaker = make(
        clock,
        failure_threshold=1,
        included_exceptions=(LookupError,),
        excluded_exceptions=(KeyError,),
    )
    empty: dict[str, int] = {}
    with pytest.raises(KeyError):
        breaker.call_sync(empty.__getitem__, "missing")
    assert breaker.state == "closed"
    with pytest.raises(IndexError):
        breaker.call_sync([].__getitem__, 0)
    assert breaker.state == "open"


class Cancelled(BaseException):
    pass


def cancelled() -> None:
    raise Cancelled


def test_base_exceptions_count_as_neither(clock: FakeClock) -> None:
    """A BaseException is re-raised and counted neither way."""
    breaker = make(clock, failure_threshold=1)
    with pytest.raises(Cancelled):
        breaker.call_sync(cancelled)
    metrics = breaker.get_metrics()
    assert (metrics["total_calls"], breaker.state) == (0, "closed")


def test_base_exception_frees_the_probe_slot(clock: FakeClock) -> None:
    """A cancelled probe gives its slot back."""
    breaker = open_then_wait(clock)
    with pytest.raises(Cancelled):
        breaker.call_sync(cancelled)
    assert breaker.call_sync(ok) == "ok"


async def test_task_cancellation_frees_the_probe_slot(clock: FakeClock) -> None:
    """Cancelling an awaiting probe task frees its slot and counts nothing."""
    breaker = open_then_wait(clock)
    outcomes: list[str] = []

    async def probe() -> None:
        try:
            await breaker.call_async(anyio.sleep_forever)
        except anyio.get_cancelled_exc_class():
            outcomes.append("cancelled")
            raise

    async with anyio.create_task_group() as group:
        group.start_soon(probe)
        await anyio.wait_all_tasks_blocked()
        group.cancel_scope.cancel()
    assert outcomes == ["cancelled"]
    assert breaker.get_metrics()["total_calls"] == 1  # only the first failure
    assert breaker.call_sync(ok) == "ok"


# -- metrics ------------------------------------------------------------------


def test_metrics_have_every_spec_key_and_exact_values(clock: FakeClock) -> None:
    """get_metrics reports counts, rates, mean duration and recovery time."""
    breaker = make(clock, failure_threshold=2, recovery_timeout=30)

    def slow_ok() -> None:
        clock.advance(0.5)

    def slow_fail() -> None:
        clock.advance(1.5)
        raise ConnectionError

    breaker.call_sync(slow_ok)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call_sync(slow_fail)
    with pytest.raises(CircuitOpenError):
        breaker.call_sync(ok)
    clock.advance(5)
    assert breaker.get_metrics() == {
        "name": "api",
        "state": "open",
        "total_calls": 3,
        "total_successes": 1,
        "total_failures": 2,
        "total_rejected": 1,
        "total_trips": 1,
        "success_rate": pytest.approx(1 / 3),
        "failure_rate": pytest.approx(2 / 3),
        "avg_call_duration_ms": pytest.approx(3500 / 3),
        "time_until_recovery": 25.0,
        "window_calls": None,
        "window_failure_rate": None,
        "window_slow_call_rate": None,
    }


def test_metrics_before_any_call_are_zero(clock: FakeClock) -> None:
    """Rates are 0.0 when no call has finished."""
    metrics = make(clock).get_metrics()
    assert metrics["success_rate"] == metrics["failure_rate"] == 0.0
    assert metrics["avg_call_duration_ms"] == 0.0


# -- trip and reset -----------------------------------------------------------


def test_trip_forces_open_and_counts_once(clock: FakeClock) -> None:
    """trip() opens the circuit; tripping again renews the window only."""
    breaker = make(clock, recovery_timeout=10)
    breaker.trip()
    clock.advance(8)
    breaker.trip()
    assert breaker.get_metrics()["total_trips"] == 1
    assert breaker.get_metrics()["time_until_recovery"] == 10.0


def test_reset_closes_and_zeroes_every_counter(clock: FakeClock) -> None:
    """reset() closes the circuit and clears totals."""
    breaker = make(clock, failure_threshold=1)
    fail(breaker)
    with pytest.raises(CircuitOpenError):
        breaker.call_sync(ok)
    breaker.reset()
    metrics = breaker.get_metrics()
    assert metrics["state"] == "closed"
    assert [metrics[k] for k in ("total_calls", "total_rejected", "total_trips")] == [
        0,
        0,
        0,
    ]


def test_reset_makes_running_calls_late(clock: FakeClock) -> None:
    """A call admitted before reset() cannot trip the fresh circuit."""
    breaker = make(clock, failure_threshold=1)
    with pytest.raises(ConnectionError), breaker:
        breaker.reset()
        raise ConnectionError
    assert breaker.state == "closed"
    assert breaker.get_metrics()["total_failures"] == 1


# -- the ways to call ---------------------------------------------------------


async def test_decorated_async_function_and_method(clock: FakeClock) -> None:
    """The decorator works on coroutine functions and methods alike."""
    breaker = make(clock, failure_threshold=1)

    class Client:
        def __init__(self) -> None:
            self.prefix = ">"

        @breaker
        async def get(self, path: str) -> str:
            return self.prefix + path

        @breaker
        def get_sync(self, path: str) -> str:
            return self.prefix + path

    client = Client()
    assert await client.get("/a") == ">/a"
    assert client.get_sync("/b") == ">/b"
    assert Client.get.__name__ == "get"
    assert breaker.get_metrics()["total_calls"] == 2


def test_decorator_rejects_generator_functions(clock: FakeClock) -> None:
    """Generators finish before their work does, so protecting one is an error."""
    breaker = make(clock)

    def numbers() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator function"):
        breaker(numbers)


async def test_context_managers_count_each_block_once(clock: FakeClock) -> None:
    """Each with / async with block is one call."""
    breaker = make(clock, failure_threshold=2)
    with breaker:
        pass
    async with breaker:
        pass
    with pytest.raises(ConnectionError):
        async with breaker:
            raise ConnectionError
    with pytest.raises(ConnectionError), breaker:
        raise ConnectionError
    metrics = breaker.get_metrics()
    assert (metrics["total_successes"], metrics["total_failures"]) == (2, 2)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pass


def test_nested_blocks_on_one_breaker(clock: FakeClock) -> None:
    """Nested with blocks are two calls, each with its own outcome."""
    breaker = make(clock)
    with pytest.raises(ConnectionError), breaker:
        with breaker:
            pass
        raise ConnectionError
    metrics = breaker.get_metrics()
    assert (metrics["total_successes"], metrics["total_failures"]) == (1, 1)


def test_exit_without_enter_is_an_error(clock: FakeClock) -> None:
    """Calling __exit__ without a matching __enter__ says so."""
    with pytest.raises(RuntimeError, match="did not enter"):
        make(clock).__exit__(None, None, None)


# -- fallback -----------------------------------------------------------------


def test_fallback_gets_the_same_arguments(clock: FakeClock) -> None:
    """When the circuit rejects, the fallback's result is returned."""
    breaker: CircuitBreaker[[str], float] = CircuitBreaker(
        "quotes", fallback=lambda symbol: -1.0, clock=clock
    )
    seen: list[str] = []

    @breaker
    def quote(symbol: str) -> float:
        seen.append(symbol)
        return 1.0

    breaker.trip()
    assert quote("ACME") == -1.0
    assert seen == []
    assert breaker.get_metrics()["total_rejected"] == 1


async def test_fallbacks_serve_async_functions(clock: FakeClock) -> None:
    """Sync and async fallbacks both serve a decorated coroutine function."""

    async def async_fallback(symbol: str) -> float:
        return 2.0

    for fallback, expected in ((lambda s: 1.0, 1.0), (async_fallback, 2.0)):
        breaker: CircuitBreaker[[str], float] = CircuitBreaker(
            "quotes", fallback=fallback, clock=clock
        )

        @breaker
        async def quote(symbol: str) -> float:
            return 0.0

        breaker.trip()
        assert await quote("ACME") == expected


def test_async_fallback_cannot_serve_a_sync_function(clock: FakeClock) -> None:
    """An async fallback on a sync function is refused at decoration time."""

    async def fallback() -> int:
        return 0

    def sync() -> int:
        return 1

    breaker = CircuitBreaker("x", fallback=fallback, clock=clock)
    with pytest.raises(TypeError, match="async fallback"):
        breaker(sync)


def test_context_manager_raises_even_with_a_fallback(clock: FakeClock) -> None:
    """A with block has no arguments for a fallback, so it raises."""
    breaker = CircuitBreaker("x", fallback=lambda: 0, clock=clock)
    breaker.trip()
    with pytest.raises(CircuitOpenError), breaker:
        pass


# -- hooks and events ---------------------------------------------------------


def test_state_hooks_fire_on_each_transition(clock: FakeClock) -> None:
    """on_open, on_half_open and on_close receive the breaker."""
    breaker = make(clock, failure_threshold=1, recovery_timeout=1, success_threshold=1)
    seen: list[tuple[str, str]] = []
    breaker.on_open(lambda b: seen.append(("open", b.name)))
    breaker.on_half_open(lambda b: seen.append(("half_open", b.name)))
    breaker.on_close(lambda b: seen.append(("close", b.name)))
    fail(breaker)
    clock.advance(1)
    breaker.call_sync(ok)
    assert seen == [("open", "api"), ("half_open", "api"), ("close", "api")]


def test_call_hooks_and_events(clock: FakeClock) -> None:
    """on_success / on_failure fire per call; the sink sees typed events."""
    sink = Spy()
    breaker = make(clock, sink, failure_threshold=1, recovery_timeout=4)
    outcomes: list[str] = []
    breaker.on_success(lambda b: outcomes.append("success"))
    breaker.on_failure(lambda b: outcomes.append("failure"))
    breaker.call_sync(ok)
    fail(breaker)
    with pytest.raises(CircuitOpenError):
        breaker.call_sync(ok)
    assert outcomes == ["success", "failure"]
    failed = sink.events[1]
    assert isinstance(failed, CallFailed)
    assert isinstance(failed.error, ConnectionError)
    error = failed.error
    assert sink.events == [
        CallSucceeded(name="api", duration=0.0),
        CallFailed(name="api", duration=0.0, error=error),
        StateChanged(
            name="api",
            old=CircuitState.CLOSED,
            new=CircuitState.OPEN,
            reason="failure_threshold",
            at=0.0,
        ),
        CallRejected(
            name="api", state=CircuitState.OPEN, retry_after=4.0, fallback=False
        ),
    ]


def test_a_raising_hook_is_reported_and_the_call_goes_on(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that raises never breaks the call; it is logged and emitted."""
    sink = Spy()
    breaker = make(clock, sink)
    hook_error = RuntimeError("hook bug")

    def bad_hook(breaker: object) -> None:
        raise hook_error

    breaker.on_success(bad_hook)
    with caplog.at_level(logging.ERROR, logger="aiobreakers"):
        assert breaker.call_sync(ok) == "ok"
    assert HookFailed(name="api", hook="on_success", error=hook_error) in sink.events
    assert "on_success hook of 'api' failed" in caplog.text


def test_a_raising_sink_never_breaks_the_call(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An EventSink that raises is logged; the call returns normally."""

    class BadSink:
        def emit(self, event: Event) -> None:
            raise RuntimeError("sink bug")

    breaker = CircuitBreaker("api", clock=clock, sink=BadSink())
    with caplog.at_level(logging.ERROR, logger="aiobreakers"):
        assert breaker.call_sync(ok) == "ok"
    assert "event sink" in caplog.text


async def test_async_hooks_run_as_tasks_on_the_running_loop(clock: FakeClock) -> None:
    """An async hook is scheduled on the loop and runs to completion."""
    breaker = make(clock)
    done = anyio.Event()

    async def hook(b: CircuitBreaker[..., Any]) -> None:
        await anyio.lowlevel.checkpoint()
        done.set()

    breaker.on_open(hook)
    breaker.trip()
    assert not done.is_set()
    with anyio.fail_after(1):  # real seconds: only if the hook never runs
        await done.wait()


async def test_a_failing_async_hook_is_reported(clock: FakeClock) -> None:
    """An async hook that raises is reported as HookFailed."""
    sink = Spy()
    breaker = make(clock, sink)
    finished = anyio.Event()

    async def hook(b: CircuitBreaker[..., Any]) -> None:
        finished.set()
        raise RuntimeError("async hook bug")

    breaker.on_open(hook)
    breaker.trip()
    await finished.wait()
    await anyio.wait_all_tasks_blocked()
    assert [type(e) for e in sink.events] == [StateChanged, HookFailed]


def test_async_hook_without_a_loop_runs_in_place(clock: FakeClock) -> None:
    """With no running loop, an async hook runs to completion before trip returns."""
    breaker = make(clock)
    seen: list[str] = []

    async def hook(b: CircuitBreaker[..., Any]) -> None:
        seen.append(b.name)

    breaker.on_open(hook)
    breaker.trip()
    assert seen == ["api"]


def test_hook_registration_checks_callables(clock: FakeClock) -> None:
    """Registering something that is not callable is a TypeError."""
    with pytest.raises(TypeError, match="on_open callback must be callable"):
        make(clock).on_open("alert")  # type: ignore[arg-type]


def test_hook_registration_returns_the_callback(clock: FakeClock) -> None:
    """Hook methods return the callback, so they work as decorators."""
    breaker = make(clock)

    def alert(b: CircuitBreaker[..., Any]) -> None:
        pass

    assert breaker.on_open(alert) is alert


# -- construction -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("failure_threshold", 0, ValueError, "failure_threshold must be >= 1, got 0"),
        ("failure_threshold", 2.5, TypeError, "failure_threshold must be an int"),
        ("failure_threshold", True, TypeError, "failure_threshold must be an int"),
        ("success_threshold", -1, ValueError, "success_threshold must be >= 1"),
        ("recovery_timeout", -0.1, ValueError, "recovery_timeout must be a finite"),
        ("recovery_timeout", float("nan"), ValueError, "recovery_timeout must be"),
        ("recovery_timeout", float("inf"), ValueError, "recovery_timeout must be"),
        ("recovery_timeout", "60", TypeError, "recovery_timeout must be a number"),
        ("included_exceptions", [ValueError], TypeError, "included_exceptions must"),
        ("included_exceptions", (int,), ValueError, "included_exceptions must hold"),
        ("excluded_exceptions", (KeyboardInterrupt,), ValueError, "excluded_exc"),
        ("excluded_exceptions", ("ValueError",), ValueError, "excluded_exceptions"),
        ("half_open_max_calls", 0, ValueError, "half_open_max_calls must be >= 1"),
    ],
)
def test_bad_config_is_rejected_naming_the_field(
    field: str, value: object, error: type[Exception], message: str
) -> None:
    """Each invalid field fails at construction with a message naming it."""
    with pytest.raises(error, match=f"BreakerConfig.{message}"):
        BreakerConfig(**{field: value})  # type: ignore[arg-type]


def test_config_defaults_match_the_spec() -> None:
    """BreakerConfig() has the documented defaults."""
    config = BreakerConfig()
    assert (
        config.failure_threshold,
        config.success_threshold,
        config.recovery_timeout,
        config.included_exceptions,
        config.excluded_exceptions,
        config.half_open_max_calls,
    ) == (5, 3, 60.0, (), (), 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": ""}, ValueError, "name must not be empty"),
        ({"name": 3}, TypeError, "name must be a str"),
        ({"name": "x", "config": {}}, TypeError, "config must be a BreakerConfig"),
        ({"name": "x", "fallback": 1}, TypeError, "fallback must be callable"),
        ({"name": "x", "clock": object()}, TypeError, "clock must implement the Clock"),
        ({"name": "x", "sink": 1}, TypeError, "sink must implement the EventSink"),
    ],
)
def test_bad_breaker_arguments_are_rejected(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Wrong constructor arguments fail with a message naming them."""
    with pytest.raises(error, match=message):
        CircuitBreaker(**kwargs)


def test_state_compares_to_strings_and_prints_as_one() -> None:
    """CircuitState members equal their string values."""
    state: CircuitState = CircuitState.HALF_OPEN
    assert state == "half_open"
    assert f"{CircuitState.OPEN}" == str(CircuitState.OPEN) == "open"


def test_repr_names_the_breaker_and_state(clock: FakeClock) -> None:
    """repr shows name and state."""
    assert repr(make(clock)) == "<CircuitBreaker 'api' state=closed>"


def test_trip_after_the_timeout_counts_whether_or_not_state_was_read(
    clock: FakeClock,
) -> None:
    """trip() on an expired open circuit re-opens it from half-open, counted."""
    unread, read = make(clock, recovery_timeout=5), make(clock, recovery_timeout=5)
    for breaker in (unread, read):
        breaker.trip()
    clock.advance(5)
    assert read.state == "half_open"
    for breaker in (unread, read):
        breaker.trip()
        assert breaker.get_metrics()["total_trips"] == 2


async def test_objects_with_an_async_call_method_are_protected(
    clock: FakeClock,
) -> None:
    """A callable object whose __call__ is async is awaited inside the breaker."""

    class Endpoint:
        async def __call__(self) -> str:
            raise ConnectionError

    protected = make(clock, failure_threshold=1)(Endpoint())
    with pytest.raises(ConnectionError):
        await protected()
    with pytest.raises(CircuitOpenError):
        await protected()


def test_every_call_is_timed_on_a_default_fake_clock(clock: FakeClock) -> None:
    """With a fake default clock (no clock injected) durations stay exact."""
    breaker = CircuitBreaker("api")

    def slow() -> None:
        clock.advance(0.25)

    for _ in range(40):
        breaker.call_sync(slow)
    assert breaker.get_metrics()["avg_call_duration_ms"] == 250.0


def test_a_process_wide_sink_sees_every_call_on_the_system_clock() -> None:
    """With the real clock, sampling never hides a call from a listening sink."""
    breaker = CircuitBreaker("api")
    with Spy() as spy:
        for _ in range(40):
            breaker.call_sync(ok)
    assert [type(event) for event in spy.events] == [CallSucceeded] * 40
    assert all(event.duration >= 0 for event in spy.events)  # type: ignore[union-attr]


@pytest.mark.parametrize("with_fallback", [False, True])
async def test_quiet_breakers_reject_then_probe_after_the_timeout(
    clock: FakeClock, with_fallback: bool
) -> None:
    """Breakers on the default clock (the lock-free path) open and recover."""
    fallback = (lambda: "fallback") if with_fallback else None
    breaker = CircuitBreaker(
        "quiet",
        BreakerConfig(failure_threshold=1, recovery_timeout=10),
        fallback=fallback,
    )
    calls: list[str] = []

    @breaker
    def sync_call() -> str:
        calls.append("sync")
        return "ran"

    @breaker
    async def async_call() -> str:
        calls.append("async")
        return "ran"

    breaker.trip()
    clock.advance(9.5)
    for call in (sync_call, async_call):
        if with_fallback:
            result = call()
            assert (
                await result if inspect.iscoroutine(result) else result
            ) == "fallback"
        else:
            with pytest.raises(CircuitOpenError) as info:
                result = call()
                if inspect.iscoroutine(result):
                    await result
            assert info.value.retry_after == 0.5
    assert calls == []
    assert breaker.get_metrics()["total_rejected"] == 2
    clock.advance(0.5)
    assert sync_call() == "ran"  # the probe
    assert breaker.state == "half_open"
    assert await async_call() == "ran"
    assert calls == ["sync", "async"]
