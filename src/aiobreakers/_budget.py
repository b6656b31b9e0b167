"""Retry budgets: a cap on retries as a share of calls, against retry storms."""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Final, TypedDict

from . import _fork, _ports
from ._ports import Clock, check_port
from ._tally import FOLD_AT, take
from ._validation import is_finite

if TYPE_CHECKING:
    from ._ports import Timer

__all__ = ["BudgetMetrics", "RetryBudget"]

# The window is kept as this many buckets of window / BUCKETS seconds each.
BUCKETS: Final = 10
_LONGEST_WINDOW: Final = 86_400.0
# The epoch before any reading: older than any clock's (which may be negative).
_NEVER: Final = -(2**63)


class BudgetMetrics(TypedDict):
    """The snapshot :meth:`RetryBudget.get_metrics` returns (a plain dict)."""

    balance: float
    """Retries the budget would allow now."""
    calls: int
    """Calls deposited in the window."""
    retries: int
    """Retries withdrawn in the window."""
    refusals: int
    """Retries refused since the budget was made."""


class RetryBudget:
    """
    A cap on retries, shared by any number of retry policies.

    Every protected call of a policy with this budget deposits, every retry
    withdraws; a retry the budget cannot pay is not made (the policy gives up
    at once, and its :class:`~aiobreakers.RetryExhausted` event says
    ``reason="budget"``). Over the last *window* seconds, retries may make up
    *ratio* of the calls, plus a reserve of *min_retries_per_second* (so
    that a quiet service can still retry). So when a dependency goes down,
    a fleet's retries add at most *ratio* to its load, instead of multiplying
    it by ``max_retries + 1``. This is Finagle's ``RetryBudget``, whose
    defaults these are; gRPC's retry design (proposal A6) throttles retries
    to the same end with a token bucket.

    Thread- and task-safe. Deposits are counted in batches of up to 32
    without a lock (see the design notes), each in the part of the window in
    which it was made; a retry decision counts them at once.

    Args:
        ratio: Retries allowed per call, over the window: ``0.2`` lets 20% of
            calls be retried once. Finite, at least 0.
        min_retries_per_second: The reserve: retries allowed per second of
            the window whatever the calls. Finite, at least 0.
        window: Seconds over which calls and retries are counted. Between
            0.001 and 86400.
        clock: Times the window; ``None`` uses the process-wide default at
            each call.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument is out of range; the message names it.
    """

    __slots__ = (
        "__weakref__",
        "_buckets",
        "_latest",
        "_lock",
        "_pending",
        "_refusals",
        "_timer",
        "_width",
        "min_retries_per_second",
        "ratio",
        "window",
    )

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_retries_per_second: float = 10.0,
        window: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        _check_number("ratio", ratio, low=0.0)
        _check_number("min_retries_per_second", min_retries_per_second, low=0.0)
        _check_number("window", window, low=0.001, high=_LONGEST_WINDOW)
        self.ratio: float = float(ratio)
        self.min_retries_per_second: float = float(min_retries_per_second)
        self.window: float = float(window)
        self._timer: Timer = (
            _ports.current
            if clock is None
            else _ports.Timer(check_port(clock, Clock, "clock"))
        )
        self._width = self.window / BUCKETS
        # Per bucket: [epoch, calls, retries]; a bucket of an older epoch is
        # empty.
        self._buckets = [[_NEVER, 0, 0] for _ in range(BUCKETS)]
        self._latest = _NEVER
        self._refusals = 0
        # The clock reading of each deposit not yet counted.
        self._pending: list[float] = []
        self._lock = threading.Lock()
        with _fork.making.lock:
            _fork.register(self, RetryBudget._renew_after_fork)

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio}, min_retries_per_second="
            f"{self.min_retries_per_second}, window={self.window})"
        )

    def _renew_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may be held for good)."""
        self._lock = threading.Lock()

    def deposit(self) -> None:
        """Count one protected call (policies do this for each call they make)."""
        pending = self._pending
        pending.append(self._timer.monotonic())
        if len(pending) >= FOLD_AT:
            with self._lock:
                self._fold(self._epoch())

    def withdraw(self) -> bool:
        """Take one retry from the budget; False (a refusal) if it is spent."""
        with self._lock:
            epoch = self._epoch()
            self._fold(epoch)
            if self._balance(epoch) < 1.0:
                self._refusals += 1
                return False
            self._bucket(epoch)[2] += 1
            return True

    def get_metrics(self) -> BudgetMetrics:
        """Return the balance and counts now (a consistent snapshot)."""
        with self._lock:
            epoch = self._epoch()
            self._fold(epoch)
            calls, retries = self._totals(epoch)
            return {
                "balance": self._balance(epoch),
                "calls": calls,
                "retries": retries,
                "refusals": self._refusals,
            }

    def _epoch(self) -> int:
        """
        Under the lock: the current bucket's number.

        A reading that is not finite keeps the last one. A reading earlier
        than the last (a clock that went back, or another clock installed as
        the default) moves every bucket back with it, so that what the window
        holds keeps its age: no jump freezes or empties the budget.
        """
        now = self._timer.monotonic()
        latest = self._latest
        if not is_finite(now):
            return latest if latest != _NEVER else 0
        epoch = math.floor(now / self._width)
        if epoch < latest != _NEVER:
            shift = epoch - latest
            moved = [[_NEVER, 0, 0] for _ in range(BUCKETS)]
            for bucket in self._buckets:
                if bucket[0] != _NEVER:
                    at = bucket[0] + shift
                    moved[at % BUCKETS] = [at, bucket[1], bucket[2]]
            self._buckets = moved
        self._latest = epoch
        return epoch

    def _bucket(self, epoch: int) -> list[int]:
        bucket = self._buckets[epoch % BUCKETS]
        if bucket[0] != epoch:
            bucket[:] = (epoch, 0, 0)
        return bucket

    def _fold(self, epoch: int) -> None:
        """Under the lock: count each pending deposit in the bucket of its time."""
        deposits = take(self._pending)
        if not deposits:
            return
        width = self._width
        first = min(deposits)
        if is_finite(first) and math.floor(first / width) >= epoch:
            self._bucket(epoch)[1] += len(deposits)  # all made in this bucket
            return
        oldest = epoch - BUCKETS + 1
        for made in deposits:
            # A reading ahead of the epoch (or not finite) counts as now; one
            # older than the window has expired already.
            at = min(epoch, math.floor(made / width)) if is_finite(made) else epoch
            if at >= oldest:
                self._bucket(at)[1] += 1

    def _totals(self, epoch: int) -> tuple[int, int]:
        oldest = epoch - BUCKETS + 1
        live = [bucket for bucket in self._buckets if bucket[0] >= oldest]
        return sum(b[1] for b in live), sum(b[2] for b in live)

    def _balance(self, epoch: int) -> float:
        calls, retries = self._totals(epoch)
        allowed = self.ratio * calls + self.min_retries_per_second * self.window
        return allowed - retries


def _check_number(
    field: str, value: object, *, low: float, high: float = math.inf
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"RetryBudget.{field} must be a number, got {type(value).__name__}"
            f" {value!r}"
        )
    if not (is_finite(value) and low <= value <= high):
        bounds = f">= {low}" if high == math.inf else f"between {low} and {high}"
        raise ValueError(
            f"RetryBudget.{field} must be a finite number {bounds}, got {value!r}"
        )
