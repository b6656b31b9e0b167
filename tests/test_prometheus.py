"""aiobreakers.prometheus: the exposition output, parsed back by prometheus_client."""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import (
    generate_latest as generate_openmetrics,
)
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from aiobreakers import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    RetryConfig,
    RetryPolicy,
)
from aiobreakers.prometheus import AiobreakersCollector

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from prometheus_client.metrics_core import Metric

    from aiobreakers.testing import FakeClock

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]

# prometheus_client's OpenMetrics functions have no annotations: type them here.
openmetrics_text: Callable[[CollectorRegistry], bytes] = generate_openmetrics
parse_openmetrics_text: Callable[[str], Iterable[Metric]] = parse_openmetrics

METRICS = {
    "aiobreakers_breaker_state": "gauge",
    "aiobreakers_breaker_calls": "counter",
    "aiobreakers_breaker_trips": "counter",
    "aiobreakers_retry_calls": "counter",
    "aiobreakers_retry_retries": "counter",
    "aiobreakers_retry_exhausted": "counter",
}


def scrape(registry: CollectorRegistry, prefix: str) -> Series:
    """Parse the exposition text; keep the samples of objects named *prefix*..."""
    text = generate_latest(registry).decode()
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            owner = sample.labels.get("breaker", sample.labels.get("policy", ""))
            if owner.startswith(prefix):
                series[sample.name, frozenset(sample.labels.items())] = sample.value
    return series


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def boom() -> None:
    raise ConnectionError("down")


def refused() -> None:
    raise PermissionError("no")


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh prometheus_client registry with the collector registered."""
    fresh = CollectorRegistry()
    AiobreakersCollector(registry=fresh)
    return fresh


def test_known_traffic_gives_exact_series(
    registry: CollectorRegistry, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(
        "prom-payments", BreakerConfig(failure_threshold=2, recovery_timeout=30)
    )
    for _ in range(3):
        breaker.call_sync(len, "ok")
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call_sync(boom)
    for _ in range(4):
        with pytest.raises(CircuitOpenError):
            breaker.call_sync(len, "rejected")

    policy = RetryPolicy(
        "prom-retry",
        RetryConfig(
            max_retries=2,
            base_delay=0,
            max_delay=0,
            non_retryable_exceptions=(PermissionError,),
        ),
    )
    attempts = iter([ConnectionError(), ConnectionError()])

    def flaky() -> str:
        error = next(attempts, None)
        if error is not None:
            raise error
        return "ok"

    assert policy.call_sync(len, "first time") == 10
    assert policy.call_sync(flaky) == "ok"  # after 2 retries
    with pytest.raises(ConnectionError):
        policy.call_sync(boom)  # 2 retries, then exhausted
    with pytest.raises(PermissionError):
        policy.call_sync(refused)  # not retryable

    assert scrape(registry, "prom-") == {
        key("aiobreakers_breaker_state", breaker="prom-payments", state="closed"): 0,
        key("aiobreakers_breaker_state", breaker="prom-payments", state="open"): 1,
        key("aiobreakers_breaker_state", breaker="prom-payments", state="half_open"): 0,
        key(
            "aiobreakers_breaker_calls_total",
            breaker="prom-payments",
            outcome="success",
        ): 3,
        key(
            "aiobreakers_breaker_calls_total",
            breaker="prom-payments",
            outcome="failure",
        ): 2,
        key(
            "aiobreakers_breaker_calls_total",
            breaker="prom-payments",
            outcome="rejected",
        ): 4,
        key("aiobreakers_breaker_trips_total", breaker="prom-payments"): 1,
        key("aiobreakers_retry_calls_total", policy="prom-retry", outcome="success"): 2,
        key("aiobreakers_retry_calls_total", policy="prom-retry", outcome="failure"): 2,
        key("aiobreakers_retry_retries_total", policy="prom-retry"): 4,
        key("aiobreakers_retry_exhausted_total", policy="prom-retry"): 1,
    }


def test_families_have_their_types_and_help(registry: CollectorRegistry) -> None:
    kept = CircuitBreaker("prom-types"), RetryPolicy("prom-types")
    families = {
        family.name: family
        for family in text_string_to_metric_families(generate_latest(registry).decode())
    }
    assert {name: family.type for name, family in families.items()} == METRICS
    assert all(family.documentation for family in families.values())
    assert len(kept) == 2


def test_the_openmetrics_exposition_parses_too(registry: CollectorRegistry) -> None:
    breaker = CircuitBreaker("prom-openmetrics")
    breaker.trip()
    text = openmetrics_text(registry).decode()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in parse_openmetrics_text(text)
        for sample in family.samples
    }
    assert (
        samples[key("aiobreakers_breaker_trips_total", breaker="prom-openmetrics")] == 1
    )
    state = key("aiobreakers_breaker_state", breaker="prom-openmetrics", state="open")
    assert samples[state] == 1


def test_a_scrape_moves_an_open_circuit_past_its_timeout_to_half_open(
    registry: CollectorRegistry, clock: FakeClock
) -> None:
    breaker = CircuitBreaker("prom-lazy", BreakerConfig(recovery_timeout=10))
    breaker.trip()
    open_ = key("aiobreakers_breaker_state", breaker="prom-lazy", state="open")
    half_open = key("aiobreakers_breaker_state", breaker="prom-lazy", state="half_open")
    assert scrape(registry, "prom-lazy")[open_] == 1
    clock.advance(10)
    series = scrape(registry, "prom-lazy")
    assert (series[open_], series[half_open]) == (0, 1)
    assert breaker.state == "half_open"


def test_breakers_sharing_a_name_are_one_series(
    registry: CollectorRegistry, clock: FakeClock
) -> None:
    """Counters add up; the state series count the breakers in each state."""
    twins = [CircuitBreaker("prom-twin") for _ in range(3)]
    twins[0].trip()
    twins[1].call_sync(len, "ok")
    twins[2].call_sync(len, "ok")
    policies = [RetryPolicy("prom-twin") for _ in range(2)]
    for policy in policies:
        policy.call_sync(len, "ok")
    series = scrape(registry, "prom-twin")
    assert (
        series[key("aiobreakers_breaker_state", breaker="prom-twin", state="open")] == 1
    )
    closed = key("aiobreakers_breaker_state", breaker="prom-twin", state="closed")
    assert series[closed] == 2
    success = key(
        "aiobreakers_breaker_calls_total", breaker="prom-twin", outcome="success"
    )
    assert series[success] == 2
    assert series[key("aiobreakers_breaker_trips_total", breaker="prom-twin")] == 1
    retried = key(
        "aiobreakers_retry_calls_total", policy="prom-twin", outcome="success"
    )
    assert series[retried] == 2


def test_objects_made_after_registering_are_exported_and_dropped_ones_vanish(
    registry: CollectorRegistry,
) -> None:
    assert scrape(registry, "prom-late") == {}
    late = CircuitBreaker("prom-late")
    assert key("aiobreakers_breaker_trips_total", breaker="prom-late") in scrape(
        registry, "prom-late"
    )
    del late
    gc.collect()
    assert scrape(registry, "prom-late") == {}


def test_registering_is_explicit_and_once_per_registry() -> None:
    """registry=None registers nowhere; a second collector is a duplicate."""
    fresh = CollectorRegistry()
    collector = AiobreakersCollector()
    assert generate_latest(fresh) == b""
    fresh.register(collector)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        AiobreakersCollector(registry=fresh)
    fresh.unregister(collector)
    assert generate_latest(fresh) == b""


def test_describe_lists_every_family_without_samples() -> None:
    families = AiobreakersCollector().describe()
    assert {family.name: family.type for family in families} == METRICS
    assert all(not family.samples for family in families)


def test_without_prometheus_client_the_import_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "try:\n    import aiobreakers.prometheus\n"
        "except ImportError as error:\n    print(error)\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == (
        "aiobreakers.prometheus needs prometheus_client:"
        " pip install 'aiobreakers[prometheus]'"
    )


ALERTS = Path(__file__).parent.parent / "docs" / "examples"


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (Debian and Ubuntu: apt-get install prometheus)",
)
@pytest.mark.parametrize(
    "command",
    [
        ["check", "rules", "prometheus-alerts.yml"],
        ["test", "rules", "prometheus-alerts-test.yml"],
    ],
)
def test_the_documented_alert_rules_pass_promtool(command: list[str]) -> None:
    """The guide's alert rules are valid, and fire on the series we export."""
    result = subprocess.run(  # noqa: S603 - a fixed command on our own files
        ["promtool", *command],  # noqa: S607 - promtool from PATH, as users run it
        cwd=ALERTS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
