"""
Retry beyond the spec (issue 14), through the public API, on the fake clock.

Deadlines, per-attempt timeouts, result predicates, server-requested delays,
retry budgets, retried blocks (``attempts()``) and the breaker's
``failure_on_result``. Waits are virtual and asserted exactly.
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import math
import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from aiobreakers import (
    BackoffStrategy,
    BreakerConfig,
    CallFailed,
    CircuitBreaker,
    CircuitOpenError,
    RetryBudget,
    RetryConfig,
    RetryPolicy,
    UnwantedResult,
    parse_retry_after,
)
from aiobreakers.testing import BreakerSpy, FakeClock, RetrySpy

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("fake_clock", "retry_spy")]

# A fixed HTTP-date and its epoch seconds, to count Retry-After dates from.
DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
DATE_EPOCH = email.utils.parsedate_to_datetime(DATE).timestamp()


class Script:
    """A dependency that raises or returns the scripted outcomes, in order."""

    def __init__(self, *outcomes: object, clock: FakeClock | None = None) -> None:
        self.outcomes = list(outcomes)
        self.clock = clock
        self.calls = 0
        self.started: list[float] = []

    def __call__(self) -> Any:
        self.calls += 1
        if self.clock is not None:
            self.started.append(self.clock.monotonic())
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def call_async(self) -> Any:
        return self()


class ThrottledError(Exception):
    """An HTTP 429 or 503 with its response headers."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(headers)
        self.headers = headers


def policy(
    name: str = "api", budget: RetryBudget | None = None, **config: Any
) -> RetryPolicy:
    """A policy on the installed fake clock, with exact (exponential) delays."""
    config.setdefault("strategy", BackoffStrategy.EXPONENTIAL)
    config.setdefault("base_delay", 1.0)
    return RetryPolicy(name, RetryConfig(**config), budget=budget)


# -- deadline ------------------------------------------------------------------


def test_deadline_never_starts_a_wait_that_would_end_past_it(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """A wait ending past the deadline is skipped: the last error is raised at once."""
    fake_clock.advance(100.0)  # the deadline counts from the first attempt
    errors = [ConnectionError(n) for n in range(1, 6)]

    def slow_failure() -> None:
        fake_clock.advance(0.5)
        raise errors.pop(0)

    retry = policy(max_retries=5, deadline=5.0)
    with pytest.raises(ConnectionError) as raised:
        retry.call_sync(slow_failure)
    assert raised.value.args == (3,)  # attempts at 100, 101.5 and 104
    assert fake_clock.sleeps == [1.0, 2.0]  # the 4.0 s wait would end at 109
    assert fake_clock.monotonic() == 104.5  # raised without waiting
    (exhausted,) = retry_spy.exhausted("api")
    assert exhausted.reason == "deadline"
    assert exhausted.attempts == 3
    assert exhausted.error is raised.value
    assert exhausted.elapsed == 4.0
    metrics = retry.get_metrics()
    assert (metrics["total_failures"], metrics["total_exhausted"]) == (1, 1)


def test_a_wait_ending_exactly_at_the_deadline_is_made(fake_clock: FakeClock) -> None:
    """The deadline is inclusive: a wait that ends on it is still made."""
    flaky = Script(ConnectionError(), ConnectionError(), "ok")
    assert policy(deadline=3.0).call_sync(flaky) == "ok"
    assert fake_clock.sleeps == [1.0, 2.0]
    assert fake_clock.monotonic() == 3.0


def test_without_a_deadline_the_same_waits_are_made(fake_clock: FakeClock) -> None:
    """With no deadline, every retry waits its strategy delay."""
    flaky = Script(*(ConnectionError() for _ in range(4)), "ok")
    assert policy(max_retries=4).call_sync(flaky) == "ok"
    assert fake_clock.sleeps == [1.0, 2.0, 4.0, 8.0]


async def test_an_async_attempt_running_at_the_deadline_is_cut_there(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """The attempt still running at the deadline fails there with TimeoutError."""
    started: list[float] = []
    cancelled: list[float] = []

    async def hangs_on_the_third_attempt() -> str:
        started.append(fake_clock.monotonic())
        if len(started) < 3:
            raise ConnectionError
        try:
            await anyio.sleep_forever()  # only the cut ends it
        except anyio.get_cancelled_exc_class():
            cancelled.append(fake_clock.monotonic())
            raise
        return "never"

    retry = policy(max_retries=5, deadline=5.0)
    with pytest.raises(TimeoutError) as raised:
        await retry.call_async(hangs_on_the_third_attempt)
    assert type(raised.value) is TimeoutError
    assert started == [0.0, 1.0, 3.0]
    assert cancelled == [5.0]
    assert fake_clock.monotonic() == 5.0
    retry_spy.assert_delays("api", [1.0, 2.0])
    (exhausted,) = retry_spy.exhausted("api")
    assert exhausted.reason == "deadline"
    assert exhausted.error is raised.value


async def test_an_async_attempt_finishing_before_the_deadline_is_not_cut(
    fake_clock: FakeClock,
) -> None:
    """A deadline costs a quick async attempt nothing: its result comes back."""

    async def quick() -> str:
        await fake_clock.sleep_async(4.0)
        return "ok"

    assert await policy(deadline=5.0).call_async(quick) == "ok"
    assert fake_clock.monotonic() == 4.0


# -- attempt_timeout -----------------------------------------------------------


async def test_attempt_timeout_cuts_a_slow_attempt_which_is_retried(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """A timed-out attempt raises the builtin TimeoutError and is retried."""
    cancelled: list[float] = []

    async def slow_then_quick() -> str:
        if not cancelled:
            try:
                await fake_clock.sleep_async(60.0)
            except anyio.get_cancelled_exc_class():
                cancelled.append(fake_clock.monotonic())
                raise
        return "ok"

    retry = policy(attempt_timeout=2.0)
    assert await retry.call_async(slow_then_quick) == "ok"
    assert cancelled == [2.0]
    assert fake_clock.monotonic() == 3.0  # 2 s cut, 1 s wait
    (scheduled,) = retry_spy.retries("api")
    assert type(scheduled.error) is TimeoutError
    assert scheduled.delay == 1.0


async def test_a_timed_out_attempt_follows_the_exception_filters(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """TimeoutError not named in retryable_exceptions is raised at once."""
    calls: list[float] = []

    async def hangs() -> None:
        calls.append(fake_clock.monotonic())
        await anyio.sleep_forever()

    retry = policy(attempt_timeout=2.0, retryable_exceptions=(ConnectionError,))
    with pytest.raises(TimeoutError):
        await retry.call_async(hangs)
    assert calls == [0.0]
    assert fake_clock.monotonic() == 2.0
    assert retry_spy.retries("api") == []
    assert retry.get_metrics()["total_failures"] == 1


async def test_each_attempt_gets_its_own_timeout(fake_clock: FakeClock) -> None:
    """Every attempt is cut after attempt_timeout, until the retries run out."""
    starts: list[float] = []

    async def always_hangs() -> None:
        starts.append(fake_clock.monotonic())
        await anyio.sleep_forever()

    with pytest.raises(TimeoutError):
        await policy(max_retries=2, attempt_timeout=1.5).call_async(always_hangs)
    assert starts == [0.0, 2.5, 6.0]  # 1.5 s each, with waits of 1 s and 2 s
    assert fake_clock.monotonic() == 7.5


async def test_cancelling_the_caller_while_a_timed_out_attempt_winds_down(
    fake_clock: FakeClock,
) -> None:
    """Cancellation during a cut attempt's cleanup propagates; nothing is retried."""
    cleaning = anyio.Event()
    release = anyio.Event()
    calls: list[int] = []
    outcomes: list[str] = []

    async def slow_cleanup() -> None:
        calls.append(1)
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cleaning.set()
            with anyio.CancelScope(shield=True):
                await release.wait()  # cleanup that takes a while
            raise

    retry = policy(max_retries=3, attempt_timeout=1.0)

    async def call() -> None:
        try:
            await retry.call_async(slow_cleanup)
        except anyio.get_cancelled_exc_class():
            outcomes.append("cancelled")
            raise

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        await cleaning.wait()  # the attempt was cut and is cleaning up
        group.cancel_scope.cancel()
        release.set()
    assert outcomes == ["cancelled"]
    assert calls == [1]
    assert retry.get_metrics()["total_calls"] == 0


async def test_cancelling_the_caller_during_a_timed_attempt_is_no_timeout(
    fake_clock: FakeClock,
) -> None:
    """The caller's cancellation leaves a timed attempt as itself: no TimeoutError."""
    calls: list[float] = []
    outcomes: list[str] = []
    retry = policy(attempt_timeout=5.0)
    with anyio.CancelScope() as scope:

        async def attempt() -> str:
            calls.append(fake_clock.monotonic())
            scope.cancel()
            await anyio.sleep_forever()  # the cancellation lands here
            return "never"

        try:
            await retry.call_async(attempt)
        except anyio.get_cancelled_exc_class():  # itself, not in an exception group
            outcomes.append("cancelled")
            raise
    assert scope.cancelled_caught
    assert (calls, outcomes) == ([0.0], ["cancelled"])
    assert fake_clock.monotonic() == 0.0
    assert retry.get_metrics()["total_calls"] == 0


def test_attempt_timeout_refuses_sync_functions_at_decoration() -> None:
    """A sync function cannot be interrupted: decorating one is a TypeError."""
    retry = policy(attempt_timeout=1.0)
    with pytest.raises(TypeError, match=r"attempt_timeout.*async attempts only"):

        @retry
        def sync_call() -> None: ...


def test_attempt_timeout_refuses_sync_functions_in_call_sync() -> None:
    """call_sync with an attempt_timeout is a TypeError naming the function."""
    script = Script("ok")
    with pytest.raises(TypeError, match=r"attempt_timeout.*Script"):
        policy(attempt_timeout=1.0).call_sync(script)
    assert script.calls == 0


# -- retry_on_result -----------------------------------------------------------


def test_an_unwanted_result_is_retried_like_a_failure(fake_clock: FakeClock) -> None:
    """A result the predicate rejects is waited out and retried."""
    script = Script(503, 503, 200)
    retry = policy(retry_on_result=lambda status: status == 503)
    assert retry.call_sync(script) == 200
    assert script.calls == 3
    assert fake_clock.sleeps == [1.0, 2.0]
    metrics = retry.get_metrics()
    assert (metrics["total_successes"], metrics["total_retries"]) == (1, 2)


async def test_an_unwanted_async_result_is_retried(fake_clock: FakeClock) -> None:
    """Async results are judged the same way."""
    script = Script(503, 200)
    retry = policy(retry_on_result=lambda status: status == 503)
    assert await retry.call_async(script.call_async) == 200
    assert fake_clock.sleeps == [1.0]


def test_the_last_result_is_returned_when_retries_run_out(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """Out of retries, the caller gets the last result: nothing is raised."""
    response = {"status": 503}
    retry = policy(max_retries=2, retry_on_result=lambda r: r["status"] == 503)
    assert retry.call_sync(Script(response)) is response
    assert fake_clock.sleeps == [1.0, 2.0]
    (exhausted,) = retry_spy.exhausted("api")
    assert exhausted.reason == "max_retries"
    assert exhausted.attempts == 3
    assert retry.get_metrics()["total_exhausted"] == 1


def test_hooks_events_and_spies_get_an_unwanted_result(retry_spy: RetrySpy) -> None:
    """A rejected result reaches hooks and events as an UnwantedResult, never None."""
    seen: list[tuple[int, Exception, float]] = []
    retry = policy(max_retries=1, retry_on_result=lambda status: status >= 500)
    retry.on_retry(lambda attempt, error, delay: seen.append((attempt, error, delay)))
    assert retry.call_sync(Script(502, 504)) == 504
    ((attempt, error, delay),) = seen
    assert (attempt, delay) == (1, 1.0)
    assert isinstance(error, UnwantedResult)
    assert error.result == 502
    (scheduled,) = retry_spy.retries("api")
    assert isinstance(scheduled.error, UnwantedResult)
    assert scheduled.error.result == 502
    (exhausted,) = retry_spy.exhausted("api")
    assert isinstance(exhausted.error, UnwantedResult)
    assert exhausted.error.result == 504
    assert str(exhausted.error) == "unwanted result 504"


def test_a_result_predicate_that_raises_accepts_the_result(
    caplog: pytest.LogCaptureFixture, fake_clock: FakeClock
) -> None:
    """A broken retry_on_result is logged, and the result returned as it is."""

    def broken(result: object) -> bool:
        raise KeyError(result)

    with caplog.at_level(logging.ERROR, logger="aiobreakers"):
        assert policy(retry_on_result=broken).call_sync(Script(503)) == 503
    assert "retry_on_result of retry policy 'api' raised" in caplog.text
    assert fake_clock.sleeps == []


def test_the_deadline_returns_the_last_unwanted_result(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """When the deadline ends the retries of a bad result, that result is returned."""
    retry = policy(max_retries=5, deadline=2.5, retry_on_result=lambda r: r == 503)
    assert retry.call_sync(Script(503)) == 503
    assert fake_clock.sleeps == [1.0]
    assert retry_spy.exhausted("api")[0].reason == "deadline"


# -- delay_from and parse_retry_after ------------------------------------------


def retry_after(error: Exception) -> float | None:
    """delay_from for ThrottledError errors: their Retry-After header."""
    if isinstance(error, ThrottledError):
        return parse_retry_after(error.headers.get("Retry-After"))
    return None


def test_delay_from_waits_exactly_what_the_server_asked(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """A server delay replaces the strategy's; None keeps the strategy's."""
    script = Script(
        ThrottledError({"Retry-After": "7"}),  # instead of 1.0
        ConnectionError(),  # the strategy's 2.0
        ThrottledError({"Retry-After": "0"}),  # retry at once
        ThrottledError({}),  # no header: the strategy's 8.0
        "ok",
    )
    retry = policy(max_retries=4, max_delay=10.0, delay_from=retry_after)
    assert retry.call_sync(script) == "ok"
    assert fake_clock.sleeps == [7.0, 2.0, 8.0]  # a zero wait never sleeps
    retry_spy.assert_delays("api", [7.0, 2.0, 0.0, 8.0])


async def test_delay_from_in_async_calls(fake_clock: FakeClock) -> None:
    """Async calls honour the server's delay too."""
    script = Script(ThrottledError({"Retry-After": "3"}), "ok")
    retry = policy(delay_from=retry_after)
    assert await retry.call_async(script.call_async) == "ok"
    assert fake_clock.sleeps == [3.0]


def test_a_server_delay_above_max_delay_ends_the_retries(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """Retrying sooner than asked would disobey the server: the error is raised."""
    error = ThrottledError({"Retry-After": "120"})
    retry = policy(max_delay=60.0, delay_from=retry_after)
    with pytest.raises(ThrottledError) as raised:
        retry.call_sync(Script(error))
    assert raised.value is error
    assert fake_clock.sleeps == []
    (exhausted,) = retry_spy.exhausted("api")
    assert (exhausted.reason, exhausted.attempts) == ("server_delay", 1)


def test_a_server_delay_past_the_deadline_ends_the_retries(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """A server delay that would end past the deadline is not waited."""
    retry = policy(deadline=10.0, delay_from=retry_after)
    with pytest.raises(ThrottledError):
        retry.call_sync(Script(ThrottledError({"Retry-After": "30"}), "ok"))
    assert fake_clock.sleeps == []
    assert retry_spy.exhausted("api")[0].reason == "deadline"


def test_an_http_date_retry_after_is_waited_out(fake_clock: FakeClock) -> None:
    """delay_from may count an HTTP-date from a wall clock it chooses."""

    def until_date(error: Exception) -> float | None:
        header = (
            error.headers.get("Retry-After")
            if isinstance(error, ThrottledError)
            else None
        )
        return parse_retry_after(header, now=DATE_EPOCH - 30)

    retry = policy(delay_from=until_date)
    assert retry.call_sync(Script(ThrottledError({"Retry-After": DATE}), "ok")) == "ok"
    assert fake_clock.sleeps == [30.0]


@pytest.mark.parametrize(
    "answer", ["soon", -1.0, math.nan, math.inf, True, [5]], ids=repr
)
def test_junk_from_delay_from_is_logged_and_the_strategy_used(
    answer: object, caplog: pytest.LogCaptureFixture, fake_clock: FakeClock
) -> None:
    """An answer that is not seconds >= 0 is logged; the strategy's delay is used."""
    retry = policy(delay_from=lambda error: answer)
    with caplog.at_level(logging.ERROR, logger="aiobreakers"):
        assert retry.call_sync(Script(ConnectionError(), "ok")) == "ok"
    assert fake_clock.sleeps == [1.0]
    assert "delay_from of retry policy 'api' returned" in caplog.text


def test_a_raising_delay_from_is_logged_and_the_strategy_used(
    caplog: pytest.LogCaptureFixture, fake_clock: FakeClock
) -> None:
    """A delay_from that raises is logged; the call goes on with the strategy."""

    def broken(error: Exception) -> float:
        raise KeyError("Retry-After")

    with caplog.at_level(logging.ERROR, logger="aiobreakers"):
        assert policy(delay_from=broken).call_sync(Script(OSError(), "ok")) == "ok"
    assert fake_clock.sleeps == [1.0]
    assert "delay_from of retry policy 'api' raised" in caplog.text


def test_delay_from_is_not_asked_about_unwanted_results(
    fake_clock: FakeClock,
) -> None:
    """Results carry no server delay: retry_on_result retries use the strategy."""
    asked: list[Exception] = []

    def spy(error: Exception) -> float:
        asked.append(error)
        return 9.0

    retry = policy(retry_on_result=lambda r: r == 503, delay_from=spy)
    assert retry.call_sync(Script(503, 200)) == 200
    assert asked == []
    assert fake_clock.sleeps == [1.0]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("007", 7.0)],
)
def test_parse_retry_after_reads_delta_seconds(header: str, seconds: float) -> None:
    """Delta-seconds are read as they are."""
    assert parse_retry_after(header) == seconds


@pytest.mark.parametrize(
    ("now", "seconds"),
    [(DATE_EPOCH - 90, 90.0), (DATE_EPOCH, 0.0), (DATE_EPOCH + 3600, 0.0)],
)
def test_parse_retry_after_reads_http_dates(now: float, seconds: float) -> None:
    """An HTTP-date is counted from now=; a date in the past means 0."""
    assert parse_retry_after(DATE, now=now) == seconds


def test_parse_retry_after_counts_dates_from_the_wall_clock() -> None:
    """Without now=, an HTTP-date is counted from time.time(): 2015 is past."""
    assert parse_retry_after(DATE) == 0.0


def test_parse_retry_after_reads_dates_with_an_offset() -> None:
    """A date with a numeric offset is converted to GMT first."""
    header = "Wed, 21 Oct 2015 08:29:00 +0100"  # 07:29 GMT
    assert parse_retry_after(header, now=DATE_EPOCH) == 60.0


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        "soon",
        "-5",
        "1.5",
        "+5",
        "²",  # a digit to str.isdigit, not to float()
        "١٢٠",  # Arabic-Indic digits: not RFC 9110 delta-seconds
        "Wed, 21 Oct 2015 07:28:00",  # no zone
        "Wed, 32 Oct 2015 07:28:00 GMT",
        "99999999999999999999",  # centuries: junk, not a request
    ],
)
def test_parse_retry_after_returns_none_for_junk(header: str) -> None:
    """Anything that is not one of the two forms gives None."""
    assert parse_retry_after(header, now=DATE_EPOCH) is None


def test_parse_retry_after_returns_none_for_a_missing_header() -> None:
    """None (a header that is absent) gives None."""
    assert parse_retry_after(None) is None


# -- retrying an open circuit --------------------------------------------------


def test_retrying_circuit_open_error_waits_at_least_its_retry_after(
    fake_clock: FakeClock,
) -> None:
    """A policy that retries CircuitOpenError waits until a probe may pass."""
    breaker = CircuitBreaker(
        "dep", BreakerConfig(failure_threshold=1, recovery_timeout=5.0)
    )
    script = Script(ConnectionError(), "ok")
    retry = policy(
        max_retries=2,
        max_delay=10.0,
        retryable_exceptions=(ConnectionError, CircuitOpenError),
    )
    assert retry.call_sync(breaker(script)) == "ok"
    # Waits: the strategy's 1.0; then 4.0, the retry_after, not the strategy's 2.0.
    assert fake_clock.sleeps == [1.0, 4.0]
    assert script.calls == 2  # the rejected attempt never ran


@pytest.mark.parametrize(
    "delay_from", [None, lambda error: None], ids=["no delay_from", "answers None"]
)
def test_an_open_circuit_soon_to_probe_still_waits_the_strategy_delay(
    delay_from: Any, fake_clock: FakeClock
) -> None:
    """A retry_after below the strategy's delay does not shorten the wait."""
    breaker = CircuitBreaker("dep", BreakerConfig(recovery_timeout=0.5))
    breaker.trip()
    retry = policy(retryable_exceptions=(CircuitOpenError,), delay_from=delay_from)
    assert retry.call_sync(breaker(Script("ok"))) == "ok"
    assert fake_clock.sleeps == [1.0]  # max(strategy 1.0, retry_after 0.5)


def test_an_open_circuit_beyond_max_delay_ends_the_retries(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """A circuit open for longer than max_delay is a server delay too long to wait."""
    breaker = CircuitBreaker("dep", BreakerConfig(recovery_timeout=60.0))
    breaker.trip()
    retry = policy(max_delay=30.0, retryable_exceptions=(CircuitOpenError,))
    with pytest.raises(CircuitOpenError):
        retry.call_sync(breaker(Script("ok")))
    assert fake_clock.sleeps == []
    assert retry_spy.exhausted("api")[0].reason == "server_delay"


# -- RetryBudget ---------------------------------------------------------------


def failing() -> None:
    """A dependency that is down."""
    raise ConnectionError


def test_each_call_deposits_and_each_retry_withdraws() -> None:
    """Calls and retries are counted in the budget's window."""
    budget = RetryBudget(ratio=1.0, min_retries_per_second=0.0)
    retry = policy(budget=budget, max_delay=0.0, base_delay=0.0)
    for _ in range(3):
        retry.call_sync(Script("ok"))
    assert retry.call_sync(Script(OSError(), OSError(), "ok")) == "ok"
    metrics = budget.get_metrics()
    assert (metrics["calls"], metrics["retries"]) == (4, 2)
    assert metrics["balance"] == 2.0


def test_a_retry_the_budget_cannot_pay_is_not_made(retry_spy: RetrySpy) -> None:
    """A refused retry re-raises the error at once; the event says "budget"."""
    budget = RetryBudget(ratio=0.5, min_retries_per_second=0.0)
    retry = policy(budget=budget, max_retries=3)
    error = ConnectionError("down")
    with pytest.raises(ConnectionError) as raised:
        retry.call_sync(Script(error))  # one call pays half a retry
    assert raised.value is error
    (exhausted,) = retry_spy.exhausted("api")
    assert (exhausted.reason, exhausted.attempts) == ("budget", 1)
    assert budget.get_metrics()["refusals"] == 1
    with pytest.raises(ConnectionError):
        retry.call_sync(failing)  # two calls pay one retry
    assert retry_spy.attempts("api") == [1]
    assert [e.attempts for e in retry_spy.exhausted("api")] == [1, 2]


def test_a_budget_is_shared_and_shows_in_every_policys_metrics() -> None:
    """Two policies draw on one budget; both report its balance and refusals."""
    budget = RetryBudget(ratio=0.5, min_retries_per_second=0.0)
    first = policy("first", budget=budget, max_delay=0.0, base_delay=0.0)
    second = policy("second", budget=budget, max_delay=0.0, base_delay=0.0)
    for retry in (first, second, first, second):
        with pytest.raises(ConnectionError):
            retry.call_sync(failing)
    # Calls 2 and 4 could each pay one retry; every call ended in a refusal.
    assert first.get_metrics()["total_retries"] == 0
    assert second.get_metrics()["total_retries"] == 2
    for retry in (first, second):
        metrics = retry.get_metrics()
        assert metrics["budget_balance"] == 0.0
        assert metrics["budget_refusals"] == 4
    assert first.budget is second.budget is budget


def test_a_policy_without_a_budget_reports_none() -> None:
    """budget_balance and budget_refusals are None without a budget."""
    metrics = policy().get_metrics()
    assert metrics["budget_balance"] is None
    assert metrics["budget_refusals"] is None


def test_the_reserve_allows_retries_without_calls() -> None:
    """min_retries_per_second * window retries are allowed whatever the calls."""
    budget = RetryBudget(ratio=0.0, min_retries_per_second=0.5, window=10.0)
    assert budget.get_metrics()["balance"] == 5.0
    assert [budget.withdraw() for _ in range(6)] == [True] * 5 + [False]
    assert budget.get_metrics()["refusals"] == 1


def test_calls_and_retries_leave_the_window_as_it_slides() -> None:
    """What happened more than window seconds ago no longer counts."""
    clock = FakeClock()
    budget = RetryBudget(
        ratio=1.0, min_retries_per_second=0.0, window=10.0, clock=clock
    )
    for _ in range(4):
        budget.deposit()
    assert budget.withdraw()
    clock.advance(5.0)
    for _ in range(2):
        budget.deposit()  # not yet counted when the window moves on
    assert budget.get_metrics() == {
        "balance": 5.0,
        "calls": 6,
        "retries": 1,
        "refusals": 0,
    }
    clock.advance(5.0)  # t=10: what happened at t=0 has left the window
    assert budget.get_metrics()["calls"] == 2
    assert budget.get_metrics()["retries"] == 0
    clock.advance(5.0)  # t=15: and so has t=5
    assert budget.get_metrics()["balance"] == 0.0
    assert not budget.withdraw()


def test_deposits_made_long_ago_have_expired_when_first_counted() -> None:
    """Deposits not yet folded count when they were made, not when read."""
    clock = FakeClock()
    budget = RetryBudget(
        ratio=1.0, min_retries_per_second=0.0, window=10.0, clock=clock
    )
    retry = RetryPolicy("quiet", RetryConfig(max_retries=1), budget=budget)
    for _ in range(5):
        retry.call_sync(Script("ok"))
    clock.advance(60.0)
    assert budget.get_metrics()["calls"] == 0
    assert not budget.withdraw()


def test_the_budget_window_works_on_a_negative_clock() -> None:
    """The window slides on a clock that starts below zero too."""
    clock = FakeClock(start=-100.0)
    budget = RetryBudget(
        ratio=1.0, min_retries_per_second=0.0, window=10.0, clock=clock
    )
    budget.deposit()
    assert budget.get_metrics()["calls"] == 1
    clock.advance(10.0)
    assert budget.get_metrics()["calls"] == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"ratio": -0.1}, "RetryBudget.ratio must be a finite number >= 0"),
        ({"ratio": math.nan}, "RetryBudget.ratio must be a finite number"),
        ({"ratio": math.inf}, "RetryBudget.ratio must be a finite number"),
        (
            {"min_retries_per_second": -1},
            "RetryBudget.min_retries_per_second must be a finite number >= 0",
        ),
        ({"window": 0}, "RetryBudget.window must be a finite number between"),
        ({"window": 1e9}, "RetryBudget.window must be a finite number between"),
    ],
)
def test_budget_values_out_of_range_name_the_field(
    arguments: dict[str, Any], message: str
) -> None:
    """A value out of range is a ValueError naming the field."""
    with pytest.raises(ValueError, match=message):
        RetryBudget(**arguments)


@pytest.mark.parametrize(
    "arguments",
    [{"ratio": "0.2"}, {"ratio": True}, {"window": None}],
    ids=repr,
)
def test_budget_values_of_the_wrong_type_name_the_field(
    arguments: dict[str, Any],
) -> None:
    """A value that is not a number is a TypeError naming the field."""
    (field,) = arguments
    with pytest.raises(TypeError, match=rf"RetryBudget\.{field} must be a number"):
        RetryBudget(**arguments)


def test_a_budget_needs_a_clock_instance() -> None:
    """clock= takes an instance, not a class."""
    with pytest.raises(TypeError, match="instance"):
        RetryBudget(clock=FakeClock)  # type: ignore[arg-type]


def test_a_policy_needs_a_budget_instance() -> None:
    """budget= takes a RetryBudget instance, and says so."""
    with pytest.raises(TypeError, match=r"pass an instance, RetryBudget\(\)"):
        RetryPolicy(budget=RetryBudget)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="budget must be a RetryBudget"):
        RetryPolicy(budget=0.2)  # type: ignore[arg-type]


def test_threads_never_withdraw_more_than_the_budget_allows() -> None:
    """Many threads withdrawing at once get exactly the allowed retries."""
    budget = RetryBudget(ratio=0.0, min_retries_per_second=2.5, window=10.0)
    granted: list[bool] = []
    barrier = threading.Barrier(8)

    def withdraw_many() -> None:
        barrier.wait()
        mine = [budget.withdraw() for _ in range(200)]
        granted.extend(mine)

    threads = [threading.Thread(target=withdraw_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 25
    assert budget.get_metrics()["refusals"] == 8 * 200 - 25


def test_threads_retrying_through_policies_stay_within_the_ratio() -> None:
    """Failing calls from many threads retry at most ratio times their number."""
    budget = RetryBudget(ratio=0.1, min_retries_per_second=0.0)
    retry = policy(budget=budget, max_retries=3, max_delay=0.0, base_delay=0.0)
    barrier = threading.Barrier(8)

    def call_many() -> None:
        barrier.wait()
        for _ in range(50):
            with pytest.raises(ConnectionError):
                retry.call_sync(failing)

    threads = [threading.Thread(target=call_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    retries = retry.get_metrics()["total_retries"]
    metrics = budget.get_metrics()
    assert metrics["calls"] == 400
    assert metrics["retries"] == retries
    assert 0 < retries <= 40
    assert retry.get_metrics()["total_calls"] == 400


# -- attempts() ----------------------------------------------------------------


def test_attempts_retry_a_block_with_exact_waits(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """Retryable errors in the block are swallowed and waited out."""
    retry = policy(retryable_exceptions=(ConnectionError,))
    numbers: list[int] = []
    for attempt in retry.attempts():
        with attempt:
            numbers.append(attempt.number)
            if attempt.number < 3:
                raise ConnectionError
    assert numbers == [1, 2, 3]
    assert fake_clock.sleeps == [1.0, 2.0]
    retry_spy.assert_attempts("api", [1, 2])
    metrics = retry.get_metrics()
    assert (metrics["total_calls"], metrics["total_retries"]) == (1, 2)


async def test_async_for_attempts_retry_a_block_with_exact_waits(
    fake_clock: FakeClock,
) -> None:
    """async for waits with the sleeper's async sleep."""
    retry = policy(retryable_exceptions=(ConnectionError,))
    numbers: list[int] = []
    async for attempt in retry.attempts():
        with attempt:
            numbers.append(attempt.number)
            await anyio.lowlevel.checkpoint()
            if attempt.number < 3:
                raise ConnectionError
    assert numbers == [1, 2, 3]
    assert fake_clock.sleeps == [1.0, 2.0]
    assert fake_clock.monotonic() == 3.0


def test_the_final_error_propagates_from_the_with_unchanged(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """Out of retries, the last attempt's own exception leaves the loop."""
    errors: list[ConnectionError] = []
    with pytest.raises(ConnectionError) as raised:
        for attempt in policy(max_retries=2).attempts():
            with attempt:
                errors.append(ConnectionError(attempt.number))
                raise errors[-1]
    assert raised.value is errors[-1]
    assert raised.value.args == (3,)
    assert fake_clock.sleeps == [1.0, 2.0]
    (exhausted,) = retry_spy.exhausted("api")
    assert (exhausted.reason, exhausted.attempts) == ("max_retries", 3)


async def test_async_final_error_propagates_unchanged(fake_clock: FakeClock) -> None:
    """The same holds in async for."""
    with pytest.raises(TimeoutError, match="attempt 2"):
        async for attempt in policy(max_retries=1).attempts():
            with attempt:
                raise TimeoutError(f"attempt {attempt.number}")
    assert fake_clock.sleeps == [1.0]


def test_a_non_retryable_error_leaves_the_block_at_once(
    fake_clock: FakeClock,
) -> None:
    """An error the filters do not retry propagates from the first attempt."""
    retry = policy(non_retryable_exceptions=(ValueError,))
    numbers: list[int] = []
    with pytest.raises(ValueError, match="bad request"):
        for attempt in retry.attempts():
            with attempt:
                numbers.append(attempt.number)
                raise ValueError("bad request")
    assert numbers == [1]
    assert fake_clock.sleeps == []
    assert retry.get_metrics()["total_failures"] == 1


def test_a_block_that_succeeds_runs_once(fake_clock: FakeClock) -> None:
    """A healthy block runs one attempt and the loop ends."""
    retry = policy()
    runs = 0
    for attempt in retry.attempts():
        with attempt:
            runs += 1
    assert runs == 1
    assert fake_clock.sleeps == []
    assert retry.get_metrics()["total_successes"] == 1


def test_attempts_share_hooks_events_and_metrics_with_the_decorator(
    retry_spy: RetrySpy,
) -> None:
    """A retried block reports exactly what the same decorated call reports."""
    decorated = policy("decorated", max_retries=2)
    block = policy("block", max_retries=2)
    decorated_hooks = recorded_retries(decorated)
    block_hooks = recorded_retries(block)
    outcomes = (OSError("a"), OSError("b"), OSError("c"))
    with pytest.raises(OSError, match="c"):
        decorated.call_sync(Script(*outcomes))
    script = Script(*outcomes)
    with pytest.raises(OSError, match="c"):
        for attempt in block.attempts():
            with attempt:
                script()
    assert block_hooks == decorated_hooks == [(1, "a", 1.0), (2, "b", 2.0)]
    # The same events (the same errors, delays and elapsed time), but the name.
    assert [dataclasses.replace(e, name="") for e in retry_spy.of("block")] == [
        dataclasses.replace(e, name="") for e in retry_spy.of("decorated")
    ]
    assert len(retry_spy.of("block")) == 3
    block_metrics, decorated_metrics = block.get_metrics(), decorated.get_metrics()
    for key in ("total_calls", "total_failures", "total_retries", "total_exhausted"):
        assert block_metrics[key] == decorated_metrics[key]


def recorded_retries(retry: RetryPolicy) -> list[tuple[int, str, float]]:
    """Register an on_retry hook on *retry*; return the list it records into."""
    seen: list[tuple[int, str, float]] = []
    retry.on_retry(
        lambda attempt, error, delay: seen.append((attempt, str(error), delay))
    )
    return seen


def test_attempts_follow_the_deadline(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """A block's wait that would end past the deadline is not started."""
    with pytest.raises(ConnectionError):
        for attempt in policy(max_retries=5, deadline=4.0).attempts():
            with attempt:
                fake_clock.advance(0.5)
                raise ConnectionError
    # Attempts fail at 0.5, 2.0 (the wait to 4.0 ends on the deadline: made)
    # and 4.5, when the next wait, 4.0, would end past it.
    assert fake_clock.sleeps == [1.0, 2.0]
    assert fake_clock.monotonic() == 4.5
    assert retry_spy.exhausted("api")[0].reason == "deadline"


def test_attempts_follow_the_budget(retry_spy: RetrySpy) -> None:
    """Each run of a block deposits once; a retry the budget refuses is not made."""
    budget = RetryBudget(ratio=0.5, min_retries_per_second=0.0)
    retry = policy(budget=budget, max_retries=3)
    numbers: list[int] = []
    for _ in range(2):
        with pytest.raises(ConnectionError):
            for attempt in retry.attempts():
                with attempt:
                    numbers.append(attempt.number)
                    raise ConnectionError
    assert numbers == [1, 1, 2]
    assert [e.reason for e in retry_spy.exhausted("api")] == ["budget", "budget"]
    assert budget.get_metrics()["calls"] == 2


def test_an_attempt_not_used_as_with_is_a_runtime_error() -> None:
    """Skipping `with attempt:` is reported clearly, not retried silently."""
    with pytest.raises(RuntimeError, match=r"attempt 1 .*use each attempt as `with"):
        for _attempt in policy().attempts():
            pass


async def test_cancellation_inside_an_attempt_propagates_uncounted(
    fake_clock: FakeClock, retry_spy: RetrySpy
) -> None:
    """Cancellation in a block is neither retried nor counted."""
    retry = policy()
    numbers: list[int] = []
    with anyio.CancelScope() as scope:
        async for attempt in retry.attempts():
            with attempt:
                numbers.append(attempt.number)
                scope.cancel()
                await anyio.lowlevel.checkpoint()  # the cancellation lands here
    assert scope.cancelled_caught
    assert numbers == [1]
    assert fake_clock.sleeps == []
    assert retry_spy.of("api") == []
    assert retry.get_metrics()["total_calls"] == 0


def test_a_sync_cancellation_inside_an_attempt_propagates_uncounted() -> None:
    """KeyboardInterrupt in a sync block propagates; nothing is counted."""
    retry = policy()
    with pytest.raises(KeyboardInterrupt):
        for attempt in retry.attempts():
            with attempt:
                raise KeyboardInterrupt
    assert retry.get_metrics()["total_calls"] == 0


# -- BreakerConfig.failure_on_result -------------------------------------------


def test_an_unwanted_result_counts_as_a_breaker_failure(
    breaker_spy: BreakerSpy,
) -> None:
    """The result reaches the caller, counts as a failure and can open the circuit."""
    breaker = CircuitBreaker(
        "status",
        BreakerConfig(failure_threshold=2, failure_on_result=lambda s: s >= 500),
    )
    call = breaker(Script(200, 503, 503, 200))
    assert [call(), call(), call()] == [200, 503, 503]
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        call()
    breaker_spy.assert_calls("status", successes=1, failures=2, rejected=1)
    failed = [e for e in breaker_spy.of("status") if isinstance(e, CallFailed)]
    assert [type(e.error) for e in failed] == [UnwantedResult, UnwantedResult]
    assert [e.error.result for e in failed if isinstance(e.error, UnwantedResult)] == [
        503,
        503,
    ]
    metrics = breaker.get_metrics()
    assert (metrics["total_successes"], metrics["total_failures"]) == (1, 2)


async def test_an_unwanted_async_result_counts_as_a_breaker_failure() -> None:
    """Async results are judged the same way."""
    breaker = CircuitBreaker(
        "status",
        BreakerConfig(failure_threshold=1, failure_on_result=lambda s: s >= 500),
    )
    assert await breaker.call_async(Script(502).call_async) == 502
    assert breaker.state == "open"


def test_an_unwanted_probe_result_reopens_the_circuit(fake_clock: FakeClock) -> None:
    """A half-open probe whose result fails re-opens the circuit."""
    breaker = CircuitBreaker(
        "status",
        BreakerConfig(recovery_timeout=10.0, failure_on_result=lambda s: s >= 500),
    )
    breaker.trip()
    fake_clock.advance(10.0)
    assert breaker.call_sync(Script(503)) == 503
    assert breaker.state == "open"


def test_a_raising_failure_on_result_counts_a_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broken failure_on_result is logged, and the call counts as a success."""

    def broken(result: object) -> bool:
        raise KeyError(result)

    breaker = CircuitBreaker("status", BreakerConfig(failure_on_result=broken))
    with caplog.at_level(logging.ERROR, logger="aiobreakers"):
        assert breaker.call_sync(Script(503)) == 503
    assert breaker.get_metrics()["total_successes"] == 1
    assert "failure_on_result of breaker 'status' raised" in caplog.text


def test_retry_on_result_over_failure_on_result(
    fake_clock: FakeClock, breaker_spy: BreakerSpy, retry_spy: RetrySpy
) -> None:
    """Retry over a breaker: each bad result is retried and counted by the breaker."""
    breaker = CircuitBreaker(
        "status",
        BreakerConfig(failure_threshold=4, failure_on_result=lambda s: s >= 500),
    )
    retry = policy(max_retries=2, retry_on_result=lambda s: s >= 500)
    script = Script(503)

    @retry
    @breaker
    def fetch() -> int:
        status: int = script()
        return status

    assert fetch() == 503  # three attempts, three failures: still closed
    assert breaker.state == "closed"
    assert fake_clock.sleeps == [1.0, 2.0]
    # The fourth failure opens the circuit; the open circuit is not retried.
    with pytest.raises(CircuitOpenError):
        fetch()
    assert script.calls == 4
    breaker_spy.assert_calls("status", failures=4, rejected=1)
    retry_spy.assert_attempts("api", [1, 2, 1])


# -- validation of the new fields ----------------------------------------------


def fields(field: str, value: object) -> dict[str, Any]:
    """Keyword arguments setting one field (of any type: it is under test)."""
    return {field: value}


@pytest.mark.parametrize("field", ["deadline", "attempt_timeout"])
@pytest.mark.parametrize("value", [0, 0.0, -1.0, math.inf, math.nan], ids=repr)
def test_time_limits_must_be_finite_and_positive(field: str, value: float) -> None:
    """deadline and attempt_timeout are finite numbers of seconds above 0."""
    with pytest.raises(ValueError, match=rf"RetryConfig\.{field} must be"):
        RetryConfig(**fields(field, value))


@pytest.mark.parametrize("field", ["deadline", "attempt_timeout"])
@pytest.mark.parametrize("value", ["5", True], ids=repr)
def test_time_limits_must_be_numbers(field: str, value: object) -> None:
    """A time limit that is not a number is a TypeError naming the field."""
    with pytest.raises(TypeError, match=rf"RetryConfig\.{field} must be a number"):
        RetryConfig(**fields(field, value))


@pytest.mark.parametrize("field", ["retry_on_result", "delay_from"])
def test_predicates_must_be_callable(field: str) -> None:
    """retry_on_result and delay_from must be callable."""
    with pytest.raises(TypeError, match=rf"RetryConfig\.{field} .*must be callable"):
        RetryConfig(**fields(field, 503))


@pytest.mark.parametrize("field", ["retry_on_result", "delay_from"])
def test_predicates_must_take_one_argument(field: str) -> None:
    """A predicate that cannot take one argument is refused at construction."""
    with pytest.raises(TypeError, match=rf"RetryConfig\.{field} .*one argument"):
        RetryConfig(**fields(field, lambda a, b: True))


def test_failure_on_result_must_be_callable_with_one_argument() -> None:
    """BreakerConfig.failure_on_result is checked like the retry predicates."""
    with pytest.raises(TypeError, match=r"BreakerConfig\.failure_on_result"):
        BreakerConfig(failure_on_result=503)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"BreakerConfig\.failure_on_result.*one"):
        BreakerConfig(failure_on_result=no_argument)  # type: ignore[arg-type]


def no_argument() -> bool:
    """A predicate that forgot its argument."""
    return True


def test_the_new_fields_default_to_off() -> None:
    """By default there is no deadline, timeout, predicate or server delay."""
    config = RetryConfig()
    assert config.deadline is None
    assert config.attempt_timeout is None
    assert config.retry_on_result is None
    assert config.delay_from is None
    assert BreakerConfig().failure_on_result is None


async def test_the_real_sleeper_cuts_an_attempt_in_its_own_task() -> None:
    """With the real sleeper, the deadline cuts an attempt at once when due."""
    gate = anyio.Event()  # never set: only the cut can end the attempt
    policy = RetryPolicy("cut", RetryConfig(max_retries=2, deadline=1e-9))

    @policy
    async def stuck() -> str:
        await gate.wait()
        return "never"

    with pytest.raises(TimeoutError, match="took longer than"):
        await stuck()
    assert policy.get_metrics()["total_exhausted"] == 1


async def test_an_attempts_own_timeout_error_is_not_relabelled() -> None:
    """A TimeoutError the attempt raises itself reaches the caller unchanged."""
    policy = RetryPolicy("own", RetryConfig(max_retries=0, attempt_timeout=60.0))
    mine = TimeoutError("the dependency's own")

    @policy
    async def times_out() -> str:
        raise mine

    with pytest.raises(TimeoutError) as info:
        await times_out()
    assert info.value is mine
