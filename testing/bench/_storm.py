"""The retry storm: attempts that reach a dependency that is down, per call.

A hundred clients call a dependency that fails every attempt. Without a
budget every library makes ``MAX_RETRIES + 1`` attempts per call, so retries
multiply the load on a dependency that is already down; a
:class:`aiobreakers.RetryBudget` (``ratio=0.2``) shared by all the clients'
policies caps the retries at a fifth of the calls, plus its small reserve.
Every delay is zero, so nothing sleeps: what is counted is attempts, not time.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any

from _cases import TransientError
from _impls import MAX_RETRIES, RETRIES, SUBJECT, RetryLib, Skip

CLIENTS = 100
BUDGET_RATIO = 0.2
TARGET_WITH_BUDGET = 1.25
WITH_BUDGET = f"{SUBJECT} + RetryBudget(ratio={BUDGET_RATIO})"


@dataclass(frozen=True)
class StormResult:
    """Attempts per call for each library (or a status), and the setup."""

    clients: int
    calls: int
    outcomes: dict[str, float | str]

    @property
    def subject_meets_target(self) -> bool | None:
        """Whether the budget keeps attempts per call within the target."""
        value = self.outcomes.get(WITH_BUDGET)
        return None if not isinstance(value, float) else value <= TARGET_WITH_BUDGET


class _Down:
    """A dependency that is down: it counts the attempts that reach it."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self) -> None:
        self.attempts += 1
        raise TransientError


def _storm(protect: Any, calls_each: int) -> float:
    """Run the clients round-robin; return the attempts per call."""
    down = _Down()
    clients = [protect(down) for _ in range(CLIENTS)]
    for _ in range(calls_each):
        for client in clients:
            with contextlib.suppress(TransientError):
                client()
    return down.attempts / (CLIENTS * calls_each)


def _with_budget(module: Any) -> Any:
    budget = module.RetryBudget(ratio=BUDGET_RATIO)
    config = module.RetryConfig(max_retries=MAX_RETRIES, base_delay=0.0, max_delay=0.0)

    def protect(fn: Any) -> Any:
        return module.RetryPolicy("storm", config, budget=budget)(fn)

    return protect


def _attempt(lib: RetryLib, calls_each: int) -> float | str:
    try:
        module = lib.load()
    except Skip as skip:
        return str(skip)
    return _storm(functools.partial(lib.wrap, module), calls_each)


def run_storm(*, quick: bool) -> StormResult:
    """Count attempts per call for every retry library, and one with a budget."""
    calls_each = 10 if quick else 200
    outcomes: dict[str, float | str] = {
        lib.name: _attempt(lib, calls_each) for lib in RETRIES
    }
    subject = next(lib for lib in RETRIES if lib.name == SUBJECT)
    try:
        module = subject.load()
    except Skip as skip:
        outcomes[WITH_BUDGET] = str(skip)
    else:
        try:
            outcomes[WITH_BUDGET] = _storm(_with_budget(module), calls_each)
        except AttributeError as error:  # an aiobreakers without budgets
            outcomes[WITH_BUDGET] = f"not available ({error})"
    return StormResult(clients=CLIENTS, calls=CLIENTS * calls_each, outcomes=outcomes)


def storm_block(result: StormResult) -> str:
    """Return the text block of the storm."""
    verdict = {None: "not measured", True: "PASS", False: "FAIL"}[
        result.subject_meets_target
    ]
    lines = [
        (
            f"retry storm: {result.clients} clients, {result.calls:,} calls to a"
            f" dependency that is down, at most {MAX_RETRIES} retries each;"
            f" attempts per call  (with a budget <= {TARGET_WITH_BUDGET:g}: {verdict})"
        )
    ]
    width = max(len(name) for name in result.outcomes)
    for name, value in result.outcomes.items():
        shown = value if isinstance(value, str) else f"{value:.3f}"
        lines.append(f"  {name:<{width}}  {shown:>8}")
    return "\n".join(lines)


def storm_json(result: StormResult) -> dict[str, Any]:
    """Return the storm for the JSON document."""
    return {
        "clients": result.clients,
        "calls": result.calls,
        "target_with_budget": TARGET_WITH_BUDGET,
        "subject_meets_target": result.subject_meets_target,
        "results": {
            name: (
                {"status": value}
                if isinstance(value, str)
                else {"attempts_per_call": value}
            )
            for name, value in result.outcomes.items()
        },
    }
