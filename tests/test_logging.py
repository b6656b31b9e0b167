"""LoggingSink: events as log lines."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from aiobreakers import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    LoggingSink,
    RetryConfig,
    RetryPolicy,
)

if TYPE_CHECKING:
    from aiobreakers.testing import FakeClock


def boom() -> None:
    raise ConnectionError("down")


def test_state_changes_retries_and_rejections_are_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Each kind of event becomes one line at its level."""
    sink = LoggingSink()
    breaker = CircuitBreaker(
        "db", BreakerConfig(failure_threshold=2), clock=clock, sink=sink
    )
    retry = RetryPolicy("db-retry", RetryConfig(max_retries=1, base_delay=0), sink=sink)
    with caplog.at_level(logging.DEBUG, logger="aiobreakers.events"):
        with pytest.raises(ConnectionError):
            retry.call_sync(breaker.call_sync, boom)
        with pytest.raises(CircuitOpenError):
            breaker.call_sync(boom)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "'db-retry': retry 1 in 0.000s after ConnectionError('down')"),
        ("WARNING", "circuit 'db': closed -> open (failure_threshold)"),
        ("WARNING", "'db-retry': gave up after 2 attempts: ConnectionError('down')"),
        ("DEBUG", "circuit 'db': rejected a call (open, retry after 60.000s)"),
    ]


def test_calls_are_logged_only_when_asked(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """calls=True adds a debug line per finished call, on the given logger."""
    quiet = CircuitBreaker("a", clock=clock, sink=LoggingSink("myapp"))
    chatty = CircuitBreaker("b", clock=clock, sink=LoggingSink("myapp", calls=True))
    with caplog.at_level(logging.DEBUG, logger="myapp"):
        quiet.call_sync(len, "x")
        chatty.call_sync(len, "x")
    assert [r.getMessage() for r in caplog.records] == [
        "circuit 'b': call succeeded in 0.000s"
    ]


def test_logger_must_be_a_logger_or_a_name() -> None:
    """Anything else is a TypeError."""
    with pytest.raises(TypeError, match="logger must be a Logger or a name"):
        LoggingSink(42)  # type: ignore[arg-type]
