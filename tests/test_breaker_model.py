"""
A stateful test: one circuit breaker against a small reference model.

Hypothesis drives a :class:`CircuitBreaker` (with a :class:`FakeClock`) through
random sequences of calls, forced trips and resets, clock advances and state
reads, and compares everything a user can see with a model written from the
"Circuit breaker semantics" of the design.

Calls that stay in flight across steps are generators and coroutines suspended
inside the breaker (a ``with`` block, an ``async with`` block, a decorated
coroutine, ``call_async``), stepped by hand. Each runs in its own
:func:`contextvars.copy_context`, as an asyncio task would, so their ``with``
blocks can end in any order.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from aiobreakers import BreakerConfig, CircuitBreaker, CircuitOpenError, CircuitState
from aiobreakers.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

CLOSED: Final = CircuitState.CLOSED
OPEN: Final = CircuitState.OPEN
HALF_OPEN: Final = CircuitState.HALF_OPEN


class Abort(BaseException):
    """A non-Exception that is not cancellation (like KeyboardInterrupt)."""


# What the protected code does when it finishes.
RAISES: Final[dict[str, type[BaseException]]] = {
    "fail": ValueError,  # always counted
    "other": TypeError,  # counted only when included_exceptions is empty
    "excluded": KeyError,  # in excluded_exceptions: a success for health
    "cancel": asyncio.CancelledError,  # neither: frees a probe slot
    "abort": Abort,  # neither
}
OUTCOMES: Final = ("ok", *RAISES)
INFLIGHT_KINDS: Final = ("with", "async_with", "decorated", "call_async")
IMMEDIATE_KINDS: Final = ("decorated", "call_sync", "with")
MAX_IN_FLIGHT: Final = 6


def act(outcome: str) -> str:
    """Finish the protected work the way *outcome* says."""
    if outcome == "ok":
        return "ok"
    raise RAISES[outcome]


class Gate:
    """Awaitable: suspends a hand-driven coroutine until sent an outcome."""

    def __await__(self) -> Generator[None, str, str]:
        outcome = yield
        return outcome


async def gated() -> str:
    """Protected async work: wait at the gate, then finish as told."""
    return act(await Gate())


@dataclass
class Admitted:
    """The model's record of a call the breaker let through."""

    spell: int
    probe: bool
    start: float


@dataclass
class InFlight:
    """A call suspended inside the breaker, and its model record."""

    kind: str
    context: contextvars.Context
    send: Callable[[Any], Any]
    throw: Callable[[BaseException], Any]
    close: Callable[[], None]
    record: Admitted


class Model:
    """The reference model: the design's semantics, written plainly."""

    def __init__(self, config: BreakerConfig) -> None:
        self.config = config
        self.state = CLOSED
        self.since = 0.0  # when the current state began
        self.spell = 0  # bumped whenever a new stretch of a state begins
        self.consecutive_failures = 0
        self.half_open_successes = 0
        self.calls = 0
        self.successes = 0
        self.failures = 0
        self.rejected = 0
        self.trips = 0
        self.duration = 0.0
        self.in_flight: list[InFlight] = []

    @property
    def probes(self) -> int:
        """Calls admitted while half-open (in any spell) that are still running."""
        return sum(1 for call in self.in_flight if call.record.probe)

    def counts_as_failure(self, outcome: str) -> bool:
        if outcome == "fail":
            return True
        if outcome == "other":
            return not self.config.included_exceptions
        return False

    def enter(self, state: CircuitState, now: float) -> None:
        if state is OPEN:
            # Always a fresh recovery window; a trip only on a change of state.
            if self.state is not OPEN:
                self.trips += 1
        elif state is self.state:
            return
        self.state = state
        self.since = now
        self.spell += 1
        self.consecutive_failures = 0
        self.half_open_successes = 0

    def observe(self, now: float) -> None:
        """Open becomes half-open lazily, when someone looks after the timeout."""
        if self.state is OPEN and now - self.since >= self.config.recovery_timeout:
            self.enter(HALF_OPEN, now)

    def retry_after(self, now: float) -> float:
        if self.state is not OPEN:
            return 0.0
        return max(0.0, self.since + self.config.recovery_timeout - now)

    def admit(self, now: float) -> Admitted | None:
        """Return the record of an admitted call, or ``None`` for a rejection."""
        self.observe(now)
        if self.state is HALF_OPEN:
            # A probe held for probe_timeout gives its slot back.
            for call in self.in_flight:
                if call.record.probe and now - call.record.start >= (
                    self.config.probe_timeout
                ):
                    call.record.probe = False
        if self.state is CLOSED or (
            self.state is HALF_OPEN and self.probes < self.config.half_open_max_calls
        ):
            event(f"admitted while {self.state}")
            return Admitted(self.spell, self.state is HALF_OPEN, now)
        event(f"rejected while {self.state}")
        self.rejected += 1
        return None

    def finish(self, record: Admitted, outcome: str, now: float) -> None:
        if outcome in {"cancel", "abort"}:
            event("probe abandoned" if record.probe else "call abandoned")
            return  # counted as neither; its probe slot is freed by the caller
        failed = self.counts_as_failure(outcome)
        self.calls += 1
        self.duration += now - record.start
        if failed:
            self.failures += 1
        else:
            self.successes += 1
        if record.spell != self.spell:
            event("late outcome")
            return  # a late outcome: totals only
        if self.state is HALF_OPEN:
            if failed:
                self.enter(OPEN, now)
            else:
                self.half_open_successes += 1
                if self.half_open_successes >= self.config.success_threshold:
                    self.enter(CLOSED, now)
        elif failed:
            self.consecutive_failures += 1
            if self.consecutive_failures >= self.config.failure_threshold:
                self.enter(OPEN, now)
        else:
            self.consecutive_failures = 0

    def trip(self, now: float) -> None:
        self.enter(OPEN, now)

    def reset(self, now: float) -> None:
        if self.state is CLOSED:
            self.spell += 1  # calls admitted before the reset are late now
        for call in self.in_flight:
            call.record.probe = False  # reset frees every probe slot
        self.enter(CLOSED, now)
        self.consecutive_failures = 0
        self.half_open_successes = 0
        self.calls = self.successes = self.failures = 0
        self.rejected = self.trips = 0
        self.duration = 0.0


class BreakerMachine(RuleBasedStateMachine):
    """Random operations on one breaker, checked against :class:`Model`."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.breaker: CircuitBreaker[..., Any] = CircuitBreaker("model")
        self.model = Model(BreakerConfig())

    @initialize(
        failure_threshold=st.integers(1, 4),
        success_threshold=st.integers(1, 3),
        recovery_timeout=st.integers(0, 10),
        half_open_max_calls=st.integers(1, 3),
        included=st.sampled_from([(), (ValueError, KeyError)]),
    )
    def build(
        self,
        failure_threshold: int,
        success_threshold: int,
        recovery_timeout: int,
        half_open_max_calls: int,
        included: tuple[type[Exception], ...],
    ) -> None:
        config = BreakerConfig(
            failure_threshold=failure_threshold,
            success_threshold=success_threshold,
            recovery_timeout=float(recovery_timeout),
            half_open_max_calls=half_open_max_calls,
            included_exceptions=included,
            excluded_exceptions=(KeyError,),
        )
        self.breaker = CircuitBreaker("model", config, clock=self.clock)
        self.model = Model(config)

        @self.breaker
        def protected(outcome: str) -> str:
            return act(outcome)

        @self.breaker
        async def protected_async() -> str:
            return await gated()

        self.protected = protected
        self.protected_async = protected_async

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    # -- calls that finish within one step ----------------------------------

    @rule(kind=st.sampled_from(IMMEDIATE_KINDS), outcome=st.sampled_from(OUTCOMES))
    def call(self, kind: str, outcome: str) -> None:
        record = self.model.admit(self.now)
        expected_retry_after = self.model.retry_after(self.now)
        raised: BaseException | None = None
        result: str | None = None
        try:
            if kind == "decorated":
                result = self.protected(outcome)
            elif kind == "call_sync":
                result = self.breaker.call_sync(act, outcome)
            else:
                with self.breaker:
                    result = act(outcome)
        except BaseException as error:
            raised = error
        if record is None:
            self.check_rejection(raised, expected_retry_after)
            return
        self.model.finish(record, outcome, self.now)
        if outcome == "ok":
            assert raised is None
            assert result == "ok"
        else:
            assert type(raised) is RAISES[outcome], f"{outcome}: got {raised!r}"

    def check_rejection(self, raised: BaseException | None, retry_after: float) -> None:
        assert isinstance(raised, CircuitOpenError), f"expected rejection: {raised!r}"
        assert raised.name == "model"
        assert raised.state == self.model.state.value
        assert raised.retry_after == pytest.approx(retry_after, abs=1e-9)

    # -- calls that stay in flight across steps -----------------------------

    @precondition(lambda self: len(self.model.in_flight) < MAX_IN_FLIGHT)
    @rule(kind=st.sampled_from(INFLIGHT_KINDS))
    def start(self, kind: str) -> None:
        """Start a call that suspends inside the breaker (a probe when half-open)."""
        record = self.model.admit(self.now)
        expected_retry_after = self.model.retry_after(self.now)
        context = contextvars.copy_context()
        runner: Any
        if kind == "with":
            runner = self.with_block()
        elif kind == "async_with":
            runner = self.async_with_block()
        elif kind == "decorated":
            runner = self.protected_async()
        else:
            runner = self.breaker.call_async(gated)
        try:
            context.run(runner.send, None)
        except CircuitOpenError as error:
            self.check_rejection(error, expected_retry_after)
            return
        if record is None:
            context.run(runner.close)
            pytest.fail(f"the breaker admitted a {kind} call the model rejects")
        self.model.in_flight.append(
            InFlight(kind, context, runner.send, runner.throw, runner.close, record)
        )

    def with_block(self) -> Generator[None, str, str]:
        with self.breaker:
            return act((yield))

    async def async_with_block(self) -> str:
        async with self.breaker:
            return await gated()

    @precondition(lambda self: self.model.in_flight)
    @rule(index=st.integers(0, MAX_IN_FLIGHT - 1), outcome=st.sampled_from(OUTCOMES))
    def finish(self, index: int, outcome: str) -> None:
        """Finish one in-flight call; "cancel" cancels it where it waits."""
        call = self.model.in_flight.pop(index % len(self.model.in_flight))
        raised: BaseException | None = None
        result: object = None
        try:
            if outcome == "cancel":
                call.context.run(call.throw, asyncio.CancelledError())
            else:
                call.context.run(call.send, outcome)
        except StopIteration as stop:
            result = stop.value
        except BaseException as error:
            raised = error
        self.model.finish(call.record, outcome, self.now)
        if outcome == "ok":
            assert raised is None, f"{call.kind}: {raised!r}"
            assert result == "ok"
        else:
            assert type(raised) is RAISES[outcome], f"{outcome}: got {raised!r}"

    # -- forcing, time and reading ------------------------------------------

    @rule()
    def trip(self) -> None:
        self.breaker.trip()
        self.model.trip(self.now)

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.model.reset(self.now)

    @rule(half_seconds=st.integers(0, 30))
    def advance(self, half_seconds: int) -> None:
        self.clock.advance(half_seconds / 2)

    @rule()
    def read_state(self) -> None:
        self.model.observe(self.now)
        assert self.breaker.state is self.model.state

    # -- checked after every step -------------------------------------------

    @invariant()
    def metrics_match_model(self) -> None:
        metrics = self.breaker.get_metrics()
        model = self.model
        model.observe(self.now)  # get_metrics reads the state, which is lazy
        calls = model.calls
        assert metrics == {
            "name": "model",
            "state": model.state.value,
            "total_calls": calls,
            "total_successes": model.successes,
            "total_failures": model.failures,
            "total_rejected": model.rejected,
            "total_trips": model.trips,
            "success_rate": pytest.approx(model.successes / calls if calls else 0.0),
            "failure_rate": pytest.approx(model.failures / calls if calls else 0.0),
            "avg_call_duration_ms": pytest.approx(
                model.duration / calls * 1000.0 if calls else 0.0
            ),
            "time_until_recovery": pytest.approx(model.retry_after(self.now)),
            "window_calls": None,
            "window_failure_rate": None,
            "window_slow_call_rate": None,
        }
        assert metrics["total_calls"] == (
            metrics["total_successes"] + metrics["total_failures"]
        )

    @invariant()
    def probes_within_limit(self) -> None:
        assert self.model.probes <= self.breaker.config.half_open_max_calls

    def teardown(self) -> None:
        # Close the suspended calls, as a dying event loop would.
        for call in self.model.in_flight:
            call.context.run(call.close)


def test_breaker_matches_reference_model() -> None:
    """Any mix of calls, probes, trips, resets and clock moves matches the model."""
    run_state_machine_as_test(
        BreakerMachine,
        settings=settings(
            max_examples=200,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
