"""
Trip policies: when a closed circuit opens.

The default counts consecutive failures (:class:`ConsecutiveFailures`, which
``BreakerConfig.failure_threshold`` spells). :class:`RateWindow` judges the
share of failed or slow calls over a sliding window instead, by count or by
time, at O(1) cost per call and in bounded memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, TypeAlias

from ._validation import check_int, check_seconds

__all__ = ["ConsecutiveFailures", "RateWindow", "TripPolicy"]

# A time window is kept as this many buckets, each seconds / TIME_BUCKETS wide.
TIME_BUCKETS: Final = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsecutiveFailures:
    """
    Open after *threshold* counted failures in a row (the spec's default).

    A success resets the count. ``BreakerConfig(failure_threshold=n)`` is the
    same as ``BreakerConfig(trip=ConsecutiveFailures(threshold=n))``.

    Args:
        threshold: Consecutive counted failures that open the circuit.
    """

    threshold: int = 5

    def __post_init__(self) -> None:
        check_int(type(self).__name__, "threshold", self.threshold, 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class RateWindow:
    """
    Open when too many of the recent calls failed, or were slow.

    The window is either the last *calls* finished calls, or the calls that
    finished in the last *seconds* (on the breaker's clock, kept in 20 buckets
    of ``seconds / 20``: a call leaves the window between 95% and 100% of
    *seconds* after it finished). Once it holds at least *minimum_calls*
    calls, the circuit opens as soon as a rate reaches its threshold. Every
    call is timed while a window is in use.

    Examples: 50% failures over the last 100 calls, judged from 20 calls on::

        RateWindow(calls=100, minimum_calls=20, failure_rate=0.5)

    the same over the last 60 seconds::

        RateWindow(seconds=60, minimum_calls=20, failure_rate=0.5)

    80% of calls taking over 2 seconds::

        RateWindow(calls=100, slow_call_rate=0.8, slow_call_duration=2.0)

    Args:
        calls: Size of a count-based window: the last *calls* calls.
        seconds: Span of a time-based window, in seconds.
        minimum_calls: Calls the window must hold before any rate is judged.
        failure_rate: Share of counted failures, in (0, 1], that opens the
            circuit; ``None`` not to judge failures.
        slow_call_rate: Share of slow calls, in (0, 1], that opens the
            circuit; ``None`` not to judge slowness.
        slow_call_duration: Seconds; a call that takes longer is slow, whether
            it succeeded or failed. Required with *slow_call_rate*.

    Raises:
        TypeError: A field has the wrong type.
        ValueError: Not exactly one of *calls* and *seconds*; no rate to
            judge; a rate outside (0, 1]; *minimum_calls* above *calls*;
            *slow_call_rate* and *slow_call_duration* not given together.
    """

    calls: int | None = None
    seconds: float | None = None
    minimum_calls: int = 10
    failure_rate: float | None = None
    slow_call_rate: float | None = None
    slow_call_duration: float | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if (self.calls is None) == (self.seconds is None):
            raise ValueError(
                f"{owner} needs exactly one of calls= (a count window) and"
                f" seconds= (a time window), got calls={self.calls!r},"
                f" seconds={self.seconds!r}"
            )
        check_int(owner, "minimum_calls", self.minimum_calls, 1)
        if self.calls is not None:
            check_int(owner, "calls", self.calls, 1)
            if self.minimum_calls > self.calls:
                raise ValueError(
                    f"{owner}.minimum_calls ({self.minimum_calls}) must be <= calls"
                    f" ({self.calls}): the window could never hold enough calls"
                )
        if self.seconds is not None:
            check_seconds(owner, "seconds", self.seconds)
            if self.seconds == 0:
                raise ValueError(f"{owner}.seconds must be > 0, got 0")
        if self.failure_rate is None and self.slow_call_rate is None:
            raise ValueError(
                f"{owner} needs failure_rate= or slow_call_rate= (or both):"
                " with neither it could never open the circuit"
            )
        for field in ("failure_rate", "slow_call_rate"):
            _check_rate(owner, field, getattr(self, field))
        if (self.slow_call_rate is None) != (self.slow_call_duration is None):
            raise ValueError(
                f"{owner}.slow_call_rate and slow_call_duration go together, got"
                f" slow_call_rate={self.slow_call_rate!r},"
                f" slow_call_duration={self.slow_call_duration!r}"
            )
        if self.slow_call_duration is not None:
            check_seconds(owner, "slow_call_duration", self.slow_call_duration)


TripPolicy: TypeAlias = ConsecutiveFailures | RateWindow
"""A rule for opening a closed circuit, for ``BreakerConfig(trip=...)``."""


def _check_rate(owner: str, field: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}.{field} must be a number, got {value!r}")
    if not 0 < value <= 1:
        raise ValueError(f"{owner}.{field} must be in (0, 1], got {value!r}")


class WindowState:
    """
    The calls a :class:`RateWindow` holds now: counts, updated in O(1).

    Not thread-safe by itself: the breaker updates it under its lock.
    """

    __slots__ = (
        "_buckets",
        "_latest",
        "_next",
        "_ring",
        "_width",
        "calls",
        "failures",
        "slow",
        "window",
    )

    def __init__(self, window: RateWindow) -> None:
        self.window = window
        self.calls = 0
        self.failures = 0
        self.slow = 0
        if window.calls is not None:
            # One byte a call: bit 0 failed, bit 1 slow.
            self._ring = bytearray(window.calls)
            self._next = 0
        else:
            assert window.seconds is not None  # noqa: S101 - checked by RateWindow
            self._width = window.seconds / TIME_BUCKETS
            # Per bucket: [calls, failures, slow].
            self._buckets = [[0, 0, 0] for _ in range(TIME_BUCKETS)]
            self._latest: int | None = None

    def clear(self) -> None:
        """Forget every call (the circuit changed state)."""
        self.calls = self.failures = self.slow = 0
        if self.window.calls is not None:
            self._ring[:] = bytes(len(self._ring))
            self._next = 0
        else:
            for bucket in self._buckets:
                bucket[:] = (0, 0, 0)
            self._latest = None

    def record(self, failed: bool, duration: float | None, now: float) -> str | None:
        """
        Add one finished call; return why the circuit must open, if it must.

        Returns:
            ``"failure_rate"`` or ``"slow_call_rate"`` when that rate has
            reached its threshold over at least ``minimum_calls`` calls, else
            ``None``.
        """
        limit = self.window.slow_call_duration
        slow = limit is not None and duration is not None and duration > limit
        if self.window.calls is None:
            self._record_time(failed=failed, slow=slow, now=now)
            return self._verdict()
        # The count window, inline: this runs on every call of the breaker.
        ring = self._ring
        index = self._next
        if self.calls == len(ring):
            evicted = ring[index]
            self.failures -= evicted & 1
            self.slow -= evicted >> 1
        else:
            self.calls += 1
        ring[index] = failed | (slow << 1)
        self._next = index + 1 if index + 1 < len(ring) else 0
        self.failures += failed
        self.slow += slow
        return self._verdict()

    def rates(self, now: float) -> tuple[int, float, float]:
        """Return ``(calls, failure_rate, slow_call_rate)`` in the window now."""
        if self.window.seconds is not None:
            self._expire(self._epoch(now))
        if not self.calls:
            return (0, 0.0, 0.0)
        return (self.calls, self.failures / self.calls, self.slow / self.calls)

    def _verdict(self) -> str | None:
        window = self.window
        if self.calls < window.minimum_calls:
            return None
        # Divided, not multiplied: 7 / 100 == 0.07, but 0.07 * 100 > 7.
        if window.failure_rate is not None and (
            self.failures / self.calls >= window.failure_rate
        ):
            return "failure_rate"
        if window.slow_call_rate is not None and (
            self.slow / self.calls >= window.slow_call_rate
        ):
            return "slow_call_rate"
        return None

    def _epoch(self, now: float) -> int:
        return math.floor(now / self._width)

    def _record_time(self, *, failed: bool, slow: bool, now: float) -> None:
        epoch = self._epoch(now)
        if self._latest is not None:
            # A clock that went backwards (swapped defaults) adds to the newest.
            epoch = max(epoch, self._latest)
        self._expire(epoch)
        bucket = self._buckets[epoch % TIME_BUCKETS]
        bucket[0] += 1
        bucket[1] += failed
        bucket[2] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow

    def _expire(self, epoch: int) -> None:
        """Drop the buckets that fell out of the window by *epoch*."""
        latest = self._latest
        if latest is not None and epoch <= latest:
            return
        first = epoch - TIME_BUCKETS + 1
        if latest is not None:
            first = max(first, latest + 1)
        # At most TIME_BUCKETS steps, however long the window sat idle.
        for each in range(first, epoch + 1):
            bucket = self._buckets[each % TIME_BUCKETS]
            self.calls -= bucket[0]
            self.failures -= bucket[1]
            self.slow -= bucket[2]
            bucket[:] = (0, 0, 0)
        self._latest = epoch
