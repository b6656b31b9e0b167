"""aiobreakers.opentelemetry: read back through the SDK's in-memory metric reader."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    Sum,
)

from aiobreakers import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    RetryConfig,
    RetryPolicy,
)
from aiobreakers.opentelemetry import Instrumentation, instrument

if TYPE_CHECKING:
    from collections.abc import Iterator

    from aiobreakers.testing import FakeClock

Points = dict[tuple[str, frozenset[tuple[str, Any]]], float]

INSTRUMENTS = {
    # Each instrument's unit, and whether it is monotonic (a counter).
    "aiobreakers.breaker.state": ("{breaker}", False),
    "aiobreakers.breaker.calls": ("{call}", True),
    "aiobreakers.breaker.trips": ("{trip}", True),
    "aiobreakers.retry.calls": ("{call}", True),
    "aiobreakers.retry.retries": ("{retry}", True),
    "aiobreakers.retry.exhausted": ("{call}", True),
}


class Metrics:
    """A meter provider with an in-memory reader, read back as plain points."""

    def __init__(self, **reader: Any) -> None:
        self.reader = InMemoryMetricReader(**reader)
        self.provider = MeterProvider(
            metric_readers=[self.reader], shutdown_on_exit=False
        )

    def instruments(self) -> dict[str, Any]:
        """Collect now; return the aiobreakers metrics by name."""
        data = self.reader.get_metrics_data()
        found: dict[str, Any] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                if scope.scope.name == "aiobreakers":
                    found.update({metric.name: metric for metric in scope.metrics})
        return found

    def points(self, prefix: str) -> Points:
        """Collect now; return the points of breakers and policies named *prefix*..."""
        points: Points = {}
        for name, metric in self.instruments().items():
            for point in metric.data.data_points:
                attributes = dict(point.attributes or {})
                owner = str(attributes.get("breaker", attributes.get("policy", "")))
                if owner.startswith(prefix):
                    points[name, frozenset(attributes.items())] = point.value
        return points


def key(name: str, **attributes: str) -> tuple[str, frozenset[tuple[str, Any]]]:
    return name, frozenset(attributes.items())


@pytest.fixture
def otel() -> Iterator[Metrics]:
    metrics = Metrics()
    yield metrics
    metrics.provider.shutdown()


def boom() -> None:
    raise ConnectionError("down")


def test_known_traffic_gives_exact_points(otel: Metrics, clock: FakeClock) -> None:
    handle = instrument(meter_provider=otel.provider)
    breaker = CircuitBreaker("otel-payments", BreakerConfig(failure_threshold=2))
    breaker.call_sync(len, "ok")
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call_sync(boom)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            breaker.call_sync(len, "rejected")
    policy = RetryPolicy(
        "otel-retry", RetryConfig(max_retries=3, base_delay=0, max_delay=0)
    )
    policy.call_sync(len, "ok")
    with pytest.raises(ConnectionError):
        policy.call_sync(boom)

    assert otel.points("otel-") == {
        key("aiobreakers.breaker.state", breaker="otel-payments", state="closed"): 0,
        key("aiobreakers.breaker.state", breaker="otel-payments", state="open"): 1,
        key("aiobreakers.breaker.state", breaker="otel-payments", state="half_open"): 0,
        key("aiobreakers.breaker.calls", breaker="otel-payments", outcome="success"): 1,
        key("aiobreakers.breaker.calls", breaker="otel-payments", outcome="failure"): 2,
        key(
            "aiobreakers.breaker.calls", breaker="otel-payments", outcome="rejected"
        ): 3,
        key("aiobreakers.breaker.trips", breaker="otel-payments"): 1,
        key("aiobreakers.retry.calls", policy="otel-retry", outcome="success"): 1,
        key("aiobreakers.retry.calls", policy="otel-retry", outcome="failure"): 1,
        key("aiobreakers.retry.retries", policy="otel-retry"): 3,
        key("aiobreakers.retry.exhausted", policy="otel-retry"): 1,
    }
    handle.uninstrument()


def test_instruments_have_their_kinds_and_units(otel: Metrics) -> None:
    kept = CircuitBreaker("otel-kinds"), RetryPolicy("otel-kinds")
    with instrument(meter_provider=otel.provider):
        found = otel.instruments()
    assert set(found) == set(INSTRUMENTS)
    for name, (unit, monotonic) in INSTRUMENTS.items():
        data = found[name].data
        assert isinstance(data, Sum), name
        assert (found[name].unit, data.is_monotonic) == (unit, monotonic), name
        assert data.aggregation_temporality is AggregationTemporality.CUMULATIVE
        assert found[name].description, name
    assert len(kept) == 2


def test_values_are_read_at_each_collection(otel: Metrics, clock: FakeClock) -> None:
    """Later calls show in the next collection; a delta reader sees increments."""
    delta = Metrics(
        preferred_temporality={ObservableCounter: AggregationTemporality.DELTA}
    )
    breaker = CircuitBreaker("otel-grow", BreakerConfig(recovery_timeout=5))
    success = key("aiobreakers.breaker.calls", breaker="otel-grow", outcome="success")
    with instrument(otel.provider), instrument(delta.provider):
        breaker.call_sync(len, "ok")
        assert otel.points("otel-grow")[success] == 1
        assert delta.points("otel-grow")[success] == 1
        breaker.call_sync(len, "ok")
        breaker.call_sync(len, "ok")
        assert otel.points("otel-grow")[success] == 3
        assert delta.points("otel-grow")[success] == 2
        breaker.trip()
        clock.advance(5)  # a collection reads the state as any read does
        state = key("aiobreakers.breaker.state", breaker="otel-grow", state="half_open")
        assert otel.points("otel-grow")[state] == 1
    delta.provider.shutdown()


def test_uninstrument_stops_reporting(otel: Metrics) -> None:
    kept = CircuitBreaker("otel-stop")
    handle = instrument(meter_provider=otel.provider)
    assert isinstance(handle, Instrumentation)
    assert handle.instrumented
    assert otel.points("otel-stop")
    handle.uninstrument()
    assert not handle.instrumented
    assert otel.instruments() == {}
    handle.uninstrument()  # again: nothing to do
    assert kept.name == "otel-stop"


def test_instrumenting_again_reuses_the_instruments(otel: Metrics) -> None:
    """After uninstrument, or with a handle still active: nothing is doubled."""
    kept = CircuitBreaker("otel-again")
    trips = key("aiobreakers.breaker.trips", breaker="otel-again")
    kept.trip()
    instrument(otel.provider).uninstrument()
    first = instrument(otel.provider)
    second = instrument(otel.provider)
    assert otel.points("otel-again")[trips] == 1
    first.uninstrument()
    assert otel.points("otel-again")[trips] == 1  # second still reports
    second.uninstrument()
    assert otel.points("otel-again") == {}


def test_breakers_sharing_a_name_add_up(otel: Metrics) -> None:
    twins = [CircuitBreaker("otel-twin") for _ in range(2)]
    twins[0].trip()
    with instrument(otel.provider):
        points = otel.points("otel-twin")
    assert (
        points[key("aiobreakers.breaker.state", breaker="otel-twin", state="open")] == 1
    )
    closed = key("aiobreakers.breaker.state", breaker="otel-twin", state="closed")
    assert points[closed] == 1
    assert points[key("aiobreakers.breaker.trips", breaker="otel-twin")] == 1


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_global_provider_may_be_set_after_instrumenting() -> None:
    """meter_provider=None follows the global provider, even one set later."""
    result = run_python(
        """
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from aiobreakers import CircuitBreaker
        from aiobreakers.opentelemetry import instrument

        handle = instrument()
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        breaker = CircuitBreaker("global")
        breaker.trip()
        [resource] = reader.get_metrics_data().resource_metrics
        [scope] = resource.scope_metrics
        trips = {m.name: m for m in scope.metrics}["aiobreakers.breaker.trips"]
        print([(dict(p.attributes), p.value) for p in trips.data.data_points])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[({'breaker': 'global'}, 1)]"


def test_without_opentelemetry_the_import_says_what_to_install() -> None:
    result = run_python(
        """
        import sys
        sys.modules["opentelemetry"] = None
        try:
            import aiobreakers.opentelemetry
        except ImportError as error:
            print(error)
        """
    )
    assert result.stdout.strip() == (
        "aiobreakers.opentelemetry needs opentelemetry-api:"
        " pip install 'aiobreakers[opentelemetry]'"
    )
