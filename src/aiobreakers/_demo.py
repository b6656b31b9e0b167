"""
The terminal demo: a flaky dependency goes down and recovers.

``python -m aiobreakers demo`` runs it in about ten seconds of real time;
``--fast`` runs the same scenario at once on a virtual clock
(:class:`aiobreakers.testing.FakeClock`, injected explicitly);
``--metrics-port`` serves the Prometheus metrics meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TextIO

from ._backoff import BackoffStrategy
from ._breaker import BreakerMetrics, CircuitBreaker
from ._config import BreakerConfig
from ._errors import CircuitOpenError
from ._events import (
    CallRejected,
    Event,
    HookFailed,
    RetryExhausted,
    RetryScheduled,
    StateChanged,
)
from ._ports import Clock, Sleeper, SystemClock, SystemRandom, SystemSleeper
from ._retry import RetryConfig, RetryMetrics, RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["main", "run"]

# The scenario, in seconds from the start.
REQUESTS: Final = 20
"""How many requests the client makes."""
INTERVAL: Final = 0.5
"""Seconds between the starts of two requests."""
LATENCY: Final = 0.05
"""How long the dependency takes to answer, or to fail."""
DOWN_FROM: Final = 2.0
"""When the dependency goes down."""
DOWN_UNTIL: Final = 6.2
"""When it is back."""

BREAKER_CONFIG: Final = BreakerConfig(
    failure_threshold=3, recovery_timeout=2.0, success_threshold=2
)
RETRY_CONFIG: Final = RetryConfig(
    max_retries=2,
    base_delay=0.1,
    max_delay=1.0,
    strategy=BackoffStrategy.FULL_JITTER,
    retryable_exceptions=(ConnectionError, TimeoutError),
)


@dataclass(frozen=True)
class Stock:
    """What the client asks for: the units in stock, and where the answer came from."""

    units: int
    source: str


class _Timeline:
    """Seconds since the demo started, on the demo's clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.start = clock.monotonic()

    def now(self) -> float:
        return self.clock.monotonic() - self.start


class _Inventory:
    """The flaky dependency: answers, except between DOWN_FROM and DOWN_UNTIL."""

    def __init__(self, timeline: _Timeline, sleeper: Sleeper) -> None:
        self.timeline = timeline
        self.sleeper = sleeper
        self.units = 17

    async def stock(self, item: str) -> Stock:
        await self.sleeper.sleep_async(LATENCY)
        if DOWN_FROM <= self.timeline.now() < DOWN_UNTIL:
            raise ConnectionError(f"inventory: connection refused ({item})")
        self.units -= 1
        return Stock(self.units, "live")


class _Narrator:
    """An event sink that prints what the breaker and the retry policy do."""

    def __init__(self, timeline: _Timeline, out: TextIO) -> None:
        self.timeline = timeline
        self.out = out

    def say(self, what: str) -> None:
        print(f"{self.timeline.now():6.2f}s  {what}", file=self.out, flush=True)

    def emit(self, event: Event) -> None:
        if isinstance(event, StateChanged):
            self.say(
                f"  breaker {event.name!r}: {event.old.name} -> {event.new.name}"
                f"  ({event.reason})"
            )
        elif isinstance(event, RetryScheduled):
            self.say(
                f"  retry {event.attempt} in {event.delay:.3f}s"
                f" after {type(event.error).__name__}"
            )
        elif isinstance(event, RetryExhausted):
            self.say(f"  retries exhausted after {event.attempts} attempts")
        elif isinstance(event, CallRejected):
            served = "served by the fallback" if event.fallback else "raised"
            self.say(
                f"  rejected while {event.state.name}, {served}"
                f" (probe in {event.retry_after:.2f}s)"
            )
        elif isinstance(event, HookFailed):  # pragma: no cover - no hooks here
            self.say(f"  hook {event.hook} failed: {event.error!r}")


async def run(
    *, clock: Clock, sleeper: Sleeper, out: TextIO, seed: int = 7
) -> tuple[BreakerMetrics, RetryMetrics]:
    """
    Play the scenario on *clock* and *sleeper*, narrating to *out*.

    Returns:
        The breaker's and the retry policy's final metrics.
    """
    timeline = _Timeline(clock)
    narrator = _Narrator(timeline, out)
    inventory = _Inventory(timeline, sleeper)
    last_known: dict[str, int] = {}

    def cached(item: str) -> Stock:
        return Stock(last_known.get(item, 0), "fallback")

    breaker = CircuitBreaker(
        "inventory", BREAKER_CONFIG, fallback=cached, clock=clock, sink=narrator
    )
    retry = RetryPolicy(
        "inventory-retry",
        RETRY_CONFIG,
        clock=clock,
        sleeper=sleeper,
        random=SystemRandom(seed),
        sink=narrator,
    )

    @retry  # outer: retries transient errors, never a rejection
    @breaker  # inner: counts every attempt, and serves the fallback when open
    async def stock(item: str) -> Stock:
        return await inventory.stock(item)

    _intro(out)
    went_down = came_back = False
    for number in range(1, REQUESTS + 1):
        await sleeper.sleep_async(max(0.0, (number - 1) * INTERVAL - timeline.now()))
        if not went_down and timeline.now() >= DOWN_FROM:
            went_down = True
            narrator.say(f"-- the inventory service went down at t={DOWN_FROM}s --")
        if not came_back and timeline.now() >= DOWN_UNTIL:
            came_back = True
            narrator.say(f"-- the inventory service is back since t={DOWN_UNTIL}s --")
        narrator.say(f"request {number:2d}")
        try:
            answer = await stock("widget")
        except (ConnectionError, CircuitOpenError) as error:
            narrator.say(f"  !! failed: {type(error).__name__}: {error}")
            continue
        if answer.source == "live":
            last_known["widget"] = answer.units
        narrator.say(f"  -> {answer.units} in stock ({answer.source})")
    breaker_metrics, retry_metrics = breaker.get_metrics(), retry.get_metrics()
    _report(breaker_metrics, retry_metrics, out)
    return breaker_metrics, retry_metrics


def _intro(out: TextIO) -> None:
    lines = [
        "aiobreakers demo: a flaky inventory service behind retry over a breaker",
        (
            f"  breaker 'inventory': failure_threshold="
            f"{BREAKER_CONFIG.failure_threshold}, recovery_timeout="
            f"{BREAKER_CONFIG.recovery_timeout}s, success_threshold="
            f"{BREAKER_CONFIG.success_threshold}, fallback: last known stock"
        ),
        (
            f"  retry 'inventory-retry': max_retries={RETRY_CONFIG.max_retries},"
            f" {RETRY_CONFIG.strategy.name} backoff, base_delay="
            f"{RETRY_CONFIG.base_delay}s, max_delay={RETRY_CONFIG.max_delay}s"
        ),
        (
            f"  {REQUESTS} requests, one every {INTERVAL}s; the service is down"
            f" from t={DOWN_FROM}s to t={DOWN_UNTIL}s"
        ),
        "",
    ]
    print("\n".join(lines), file=out, flush=True)


def _report(breaker: BreakerMetrics, retry: RetryMetrics, out: TextIO) -> None:
    rows: list[tuple[str, str]] = [(f"breaker {breaker['name']!r}", "")]
    rows += [
        ("  state", breaker["state"]),
        ("  total_calls", str(breaker["total_calls"])),
        ("  total_successes", str(breaker["total_successes"])),
        ("  total_failures", str(breaker["total_failures"])),
        ("  total_rejected", str(breaker["total_rejected"])),
        ("  total_trips", str(breaker["total_trips"])),
    ]
    rows += [
        ("  success_rate", f"{breaker['success_rate']:.1%}"),
        ("  failure_rate", f"{breaker['failure_rate']:.1%}"),
        ("  avg_call_duration_ms", f"{breaker['avg_call_duration_ms']:.1f}"),
        ("  time_until_recovery", f"{breaker['time_until_recovery']:.2f}s"),
        (f"retry {retry['name']!r}", ""),
    ]
    rows += [
        ("  total_calls", str(retry["total_calls"])),
        ("  total_successes", str(retry["total_successes"])),
        ("  total_failures", str(retry["total_failures"])),
        ("  total_retries", str(retry["total_retries"])),
        ("  total_exhausted", str(retry["total_exhausted"])),
    ]
    width = max(len(name) for name, _ in rows)
    rule = "-" * (width + 12)
    print(f"\nfinal metrics\n{rule}", file=out)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>10}", file=out)
    print(rule, file=out, flush=True)


def main(
    *,
    fast: bool,
    seed: int,
    out: TextIO | None = None,
    metrics_port: int | None = None,
) -> int:
    """
    Run the demo; return the process exit status.

    Args:
        fast: Run at once on a virtual clock instead of in real time.
        seed: Seeds the retry policy's jitter.
        out: Where to narrate; ``None`` for standard output.
        metrics_port: Serve Prometheus metrics on this port of 127.0.0.1
            while the demo runs (``0``: a free port, printed); ``None`` for
            no server. Needs ``prometheus_client``.
    """
    stream = sys.stdout if out is None else out
    clock: Clock
    sleeper: Sleeper
    if fast:
        # Imported here: the core never imports the testing toolkit otherwise.
        from .testing import FakeClock  # noqa: PLC0415

        clock = sleeper = FakeClock()
    else:
        clock, sleeper = SystemClock(), SystemSleeper()
    with contextlib.ExitStack() as stack:
        if metrics_port is not None:
            try:
                url = stack.enter_context(_serving_metrics(metrics_port))
            except OSError as error:
                print(
                    f"cannot serve metrics on 127.0.0.1:{metrics_port}: {error}",
                    file=sys.stderr,
                )
                return 1
            print(f"serving Prometheus metrics at {url}\n", file=stream, flush=True)
        try:
            asyncio.run(run(clock=clock, sleeper=sleeper, out=stream, seed=seed))
        except KeyboardInterrupt:
            print("\ninterrupted", file=stream)
            return 130
    return 0


@contextlib.contextmanager
def _serving_metrics(port: int) -> Iterator[str]:
    """
    Serve every breaker's and policy's metrics on 127.0.0.1:*port* meanwhile.

    Yields the URL to scrape. Loopback only: the demo is for one machine.
    """
    # Imported here: only --metrics-port needs prometheus_client.
    import prometheus_client  # noqa: PLC0415

    from .prometheus import AiobreakersCollector  # noqa: PLC0415

    # A registry of our own: the demo's metrics, not the process's.
    metrics = prometheus_client.CollectorRegistry()
    AiobreakersCollector(registry=metrics)
    server, thread = prometheus_client.start_http_server(
        port, addr="127.0.0.1", registry=metrics
    )
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
