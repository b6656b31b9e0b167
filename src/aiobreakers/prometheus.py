"""
Prometheus metrics for every breaker and retry policy: a custom collector.

Needs ``prometheus_client`` (``pip install 'aiobreakers[prometheus]'``);
``import aiobreakers`` never imports this module. Register the collector once
and every live breaker and policy of the process is exported, read from
:data:`aiobreakers.registry` at scrape time: nothing is done per call::

    from prometheus_client import REGISTRY
    from aiobreakers.prometheus import AiobreakersCollector

    REGISTRY.register(AiobreakersCollector())

See :doc:`/observability` for the metrics and example alert rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

try:
    import prometheus_client.metrics_core
except ImportError as _error:  # pragma: no cover - tested in a subprocess
    raise ImportError(
        "aiobreakers.prometheus needs prometheus_client:"
        " pip install 'aiobreakers[prometheus]'"
    ) from _error

from . import _totals

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        Metric,
    )
    from prometheus_client.registry import CollectorRegistry

    _Families = tuple[
        GaugeMetricFamily,
        CounterMetricFamily,
        CounterMetricFamily,
        CounterMetricFamily,
        CounterMetricFamily,
        CounterMetricFamily,
    ]

__all__ = ["AiobreakersCollector"]

_Counter = prometheus_client.metrics_core.CounterMetricFamily
_Gauge = prometheus_client.metrics_core.GaugeMetricFamily


class AiobreakersCollector:
    """
    A ``prometheus_client`` collector of every live breaker and retry policy.

    Each scrape reads the counters of :data:`aiobreakers.registry`, so
    breakers and policies made after the collector (say, at import time of a
    module loaded later) are exported too, and protected calls do no work
    for it. Breakers and policies sharing a name are added up into one series
    (see :class:`~aiobreakers.Registry`). Reading a breaker's state moves an
    open circuit whose recovery timeout has passed to half-open, as any read
    does, with the usual events and hooks, on the scraping thread.

    The metrics (label values: ``state`` is ``closed``, ``open`` or
    ``half_open``):

    - ``aiobreakers_breaker_state{breaker, state}``, a gauge: 1 for the
      breaker's current state and 0 for the others (with several breakers of
      the name: how many are in each state).
    - ``aiobreakers_breaker_calls_total{breaker, outcome}``, a counter;
      ``outcome`` is ``success``, ``failure`` or ``rejected``.
    - ``aiobreakers_breaker_trips_total{breaker}``: times the circuit opened.
    - ``aiobreakers_retry_calls_total{policy, outcome}``; ``outcome`` is
      ``success`` or ``failure`` (each protected call counts once, however
      many attempts it took).
    - ``aiobreakers_retry_retries_total{policy}``: retries made.
    - ``aiobreakers_retry_exhausted_total{policy}``: calls that failed
      because their retries ran out.

    Counters restart from 0 when a breaker is reset or a breaker or policy is
    dropped (Prometheus' ``rate()`` and ``increase()`` handle such resets).

    Args:
        registry: A ``prometheus_client`` ``CollectorRegistry`` to register
            the collector with, like ``prometheus_client``'s own collectors;
            ``None`` registers it nowhere (register it yourself). Register
            one collector per registry: a second is refused as a duplicate.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Make the collector; register it with *registry* if one is given."""
        if registry is not None:
            registry.register(self)

    def describe(self) -> list[Metric]:
        """
        Return the metric families, without samples.

        ``prometheus_client`` calls it when the collector is registered, to
        refuse a second collector exporting the same names.
        """
        return list(_families())

    def collect(self) -> Iterator[Metric]:
        """Read every live breaker and policy now; yield the metric families."""
        state, calls, trips, retry_calls, retries, exhausted = _families()
        for breaker in _totals.breaker_totals():
            name = breaker.name
            for value, count in breaker.states.items():
                state.add_metric([name, value], count)
            calls.add_metric([name, "success"], breaker.successes)
            calls.add_metric([name, "failure"], breaker.failures)
            calls.add_metric([name, "rejected"], breaker.rejected)
            trips.add_metric([name], breaker.trips)
        for policy in _totals.policy_totals():
            name = policy.name
            retry_calls.add_metric([name, "success"], policy.successes)
            retry_calls.add_metric([name, "failure"], policy.failures)
            retries.add_metric([name], policy.retries)
            exhausted.add_metric([name], policy.exhausted)
        yield from (state, calls, trips, retry_calls, retries, exhausted)


def _families() -> _Families:
    """Return the six metric families, empty, in the order they are exported."""
    return (
        _Gauge(
            "aiobreakers_breaker_state",
            "Circuit breaker state: 1 for the current state, 0 for the others"
            " (summed over breakers sharing a name).",
            labels=["breaker", "state"],
        ),
        _Counter(
            "aiobreakers_breaker_calls",
            "Calls through a circuit breaker, by outcome: success, failure,"
            " or rejected without running.",
            labels=["breaker", "outcome"],
        ),
        _Counter(
            "aiobreakers_breaker_trips",
            "Times a circuit breaker opened.",
            labels=["breaker"],
        ),
        _Counter(
            "aiobreakers_retry_calls",
            "Calls protected by a retry policy, by outcome (once per call,"
            " however many attempts).",
            labels=["policy", "outcome"],
        ),
        _Counter(
            "aiobreakers_retry_retries",
            "Retries a retry policy made.",
            labels=["policy"],
        ),
        _Counter(
            "aiobreakers_retry_exhausted",
            "Calls that failed because their retries ran out.",
            labels=["policy"],
        ),
    )
