"""
What the metrics exporters export: the registry's counters, one row per name.

:mod:`aiobreakers.prometheus` and :mod:`aiobreakers.opentelemetry` both read
these at scrape or collection time, so that they agree on every figure and
on what several breakers sharing a name mean: their counters add up, and the
state series count the breakers of that name in each state (1 and 0 for a
name with one breaker).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._machine import CircuitState
from ._registry import registry

__all__ = ["STATES", "BreakerTotals", "PolicyTotals", "breaker_totals", "policy_totals"]

STATES = tuple(state.value for state in CircuitState)
"""Every state's value, in the order the exporters report them."""


@dataclass(slots=True)
class BreakerTotals:
    """The breakers of one name, added up."""

    name: str
    states: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    successes: int = 0
    failures: int = 0
    rejected: int = 0
    trips: int = 0


@dataclass(slots=True)
class PolicyTotals:
    """The retry policies of one name, added up."""

    name: str
    successes: int = 0
    failures: int = 0
    retries: int = 0
    exhausted: int = 0


def breaker_totals() -> list[BreakerTotals]:
    """Return the live breakers' counters by name, sorted by name."""
    totals: dict[str, BreakerTotals] = {}
    for breaker in registry.breakers():
        # One consistent snapshot per breaker: state and counters agree.
        metrics = breaker.get_metrics()
        row = totals.get(metrics["name"])
        if row is None:
            row = totals[metrics["name"]] = BreakerTotals(metrics["name"])
        row.states[metrics["state"]] += 1
        row.successes += metrics["total_successes"]
        row.failures += metrics["total_failures"]
        row.rejected += metrics["total_rejected"]
        row.trips += metrics["total_trips"]
    return [totals[name] for name in sorted(totals)]


def policy_totals() -> list[PolicyTotals]:
    """Return the live retry policies' counters by name, sorted by name."""
    totals: dict[str, PolicyTotals] = {}
    for policy in registry.policies():
        metrics = policy.get_metrics()
        row = totals.get(metrics["name"])
        if row is None:
            row = totals[metrics["name"]] = PolicyTotals(metrics["name"])
        row.successes += metrics["total_successes"]
        row.failures += metrics["total_failures"]
        row.retries += metrics["total_retries"]
        row.exhausted += metrics["total_exhausted"]
    return [totals[name] for name in sorted(totals)]
