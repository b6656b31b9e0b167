"""
Breaker configuration: when a circuit opens, and when it closes again.

:class:`BreakerConfig` holds every setting of a breaker. When a closed
circuit opens is one rule, :attr:`BreakerConfig.trip_policy`: consecutive
failures (:class:`ConsecutiveFailures`, which ``failure_threshold`` spells),
or the share of failed or slow calls over a sliding window
(:class:`RateWindow`). The state machine reads that rule and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from ._hooks import check_hook

if TYPE_CHECKING:
    from collections.abc import Callable

from ._validation import check_exceptions, check_int, check_seconds, is_finite

__all__ = ["BreakerConfig", "ConsecutiveFailures", "RateWindow", "TripPolicy"]

# A time window is kept as this many buckets, each seconds / TIME_BUCKETS wide.
TIME_BUCKETS: Final = 20

# The bounds of a RateWindow. A count window keeps one byte per call, so a
# million calls is a megabyte per breaker; a time window narrower than a
# millisecond has buckets too thin to divide the clock by, and one wider than
# a year is a window that never forgets.
MAX_WINDOW_CALLS: Final = 1_000_000
MIN_WINDOW_SECONDS: Final = 0.001
MAX_WINDOW_SECONDS: Final = 31_536_000  # 365 days


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
        calls: Size of a count-based window: the last *calls* calls, from 1
            to 1,000,000 (the window keeps one byte per call).
        seconds: Span of a time-based window, in seconds: from 0.001 (1 ms)
            to 31,536,000 (365 days), kept in 20 buckets of ``seconds / 20``.
        minimum_calls: Calls the window must hold before any rate is judged.
        failure_rate: Share of counted failures, in (0, 1], that opens the
            circuit; ``None`` not to judge failures.
        slow_call_rate: Share of slow calls, in (0, 1], that opens the
            circuit; ``None`` not to judge slowness.
        slow_call_duration: Seconds; a call that takes longer is slow, whether
            it succeeded or failed. Required with *slow_call_rate*.

    Raises:
        TypeError: A field has the wrong type.
        ValueError: Not exactly one of *calls* and *seconds*; *calls* or
            *seconds* out of its bounds; no rate to judge; a rate outside
            (0, 1]; *minimum_calls* above *calls*; *slow_call_rate* and
            *slow_call_duration* not given together; a negative or infinite
            *slow_call_duration*.
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
            _check_calls(owner, self.calls)
            if self.minimum_calls > self.calls:
                raise ValueError(
                    f"{owner}.minimum_calls ({self.minimum_calls}) must be <= calls"
                    f" ({self.calls}): the window could never hold enough calls"
                )
        if self.seconds is not None:
            _check_span(owner, self.seconds)
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


def _check_calls(owner: str, calls: int) -> None:
    check_int(owner, "calls", calls, 1)
    if calls > MAX_WINDOW_CALLS:
        raise ValueError(
            f"{owner}.calls must be between 1 and {MAX_WINDOW_CALLS:_}, got"
            f" {calls!r}: a count window keeps one byte per call (for a longer"
            " window, use seconds=)"
        )


def _check_span(owner: str, seconds: float) -> None:
    check_seconds(owner, "seconds", seconds)
    if not MIN_WINDOW_SECONDS <= seconds <= MAX_WINDOW_SECONDS:
        raise ValueError(
            f"{owner}.seconds must be between {MIN_WINDOW_SECONDS} (1 ms) and"
            f" {MAX_WINDOW_SECONDS:_} (a year), got {seconds!r}: the window is"
            f" kept in {TIME_BUCKETS} buckets of seconds / {TIME_BUCKETS} each"
        )


def _check_rate(owner: str, field: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}.{field} must be a number, got {value!r}")
    if not 0 < value <= 1:
        raise ValueError(f"{owner}.{field} must be in (0, 1], got {value!r}")


_DEFAULT_FAILURE_THRESHOLD: Final = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """
    How a circuit breaker decides to open and to close.

    Args:
        failure_threshold: Consecutive counted failures, while closed, that open
            the circuit.
        success_threshold: Successful probes, while half-open, that close it.
        recovery_timeout: Seconds the circuit stays open before it lets probes
            through.
        included_exceptions: Only exceptions of these types count as failures;
            empty means every :class:`Exception`.
        excluded_exceptions: Exceptions of these types never count as failures
            (they count as successes: the dependency answered). Wins over
            *included_exceptions*.
        half_open_max_calls: Probe calls allowed in flight at once while
            half-open; further calls are rejected as if open.
        trip: When a closed circuit opens: ``None`` for *failure_threshold*
            consecutive failures, or a :class:`RateWindow` to judge the share
            of failed or slow calls over a sliding window (or
            :class:`ConsecutiveFailures`, the default spelled out). With a
            trip policy, leave *failure_threshold* at its default: it is not
            read (see :attr:`trip_policy`).
        recovery_multiplier: Each time the circuit re-opens because a probe
            failed, its recovery timeout is multiplied by this (``2.0``
            doubles it), up to *max_recovery_timeout*; closing resets it.
            ``1.0`` keeps it fixed.
        max_recovery_timeout: Seconds; the longest a growing recovery timeout
            gets. Required when *recovery_multiplier* is above 1.
        failure_on_result: Called with each protected call's result; True
            counts the call as a failure (the result still reaches the
            caller), say for a response with status 503. Events and hooks see
            an :class:`~aiobreakers.UnwantedResult` as its error. ``None``:
            results always count as successes. Not used by ``with`` blocks,
            which have no result.
        probe_timeout: Seconds after which a half-open probe that has not
            reported gives its slot back, so that a probe whose outcome is
            lost (an interrupted thread, a process that forked) can never
            keep the circuit from probing. Its late outcome still counts in
            the totals.

    Raises:
        TypeError: A field has the wrong type.
        ValueError: A field has a value out of range, such as a threshold
            below 1, a negative timeout, or a non-:class:`Exception` type in an
            exception tuple. The message names the field.
    """

    failure_threshold: int = 5
    success_threshold: int = 3
    recovery_timeout: float = 60.0
    included_exceptions: tuple[type[Exception], ...] = ()
    excluded_exceptions: tuple[type[Exception], ...] = ()
    half_open_max_calls: int = 1
    trip: TripPolicy | None = None
    recovery_multiplier: float = 1.0
    max_recovery_timeout: float | None = None
    probe_timeout: float = 60.0
    failure_on_result: Callable[[Any], object] | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_int(owner, "failure_threshold", self.failure_threshold, 1)
        check_int(owner, "success_threshold", self.success_threshold, 1)
        check_seconds(owner, "recovery_timeout", self.recovery_timeout)
        check_exceptions(owner, "included_exceptions", self.included_exceptions)
        check_exceptions(owner, "excluded_exceptions", self.excluded_exceptions)
        check_int(owner, "half_open_max_calls", self.half_open_max_calls, 1)
        self._check_trip(owner)
        self._check_recovery_growth(owner)
        if self.failure_on_result is not None:
            check_hook(self.failure_on_result, f"{owner}.failure_on_result", 1)
        check_seconds(owner, "probe_timeout", self.probe_timeout)
        if self.probe_timeout == 0:
            raise ValueError(
                f"{owner}.probe_timeout must be > 0: every probe would give its"
                " slot back at once"
            )

    def _check_trip(self, owner: str) -> None:
        trip = self.trip
        if trip is None:
            return
        if not isinstance(trip, (ConsecutiveFailures, RateWindow)):
            raise TypeError(
                f"{owner}.trip must be a RateWindow or ConsecutiveFailures,"
                f" got {trip!r}"
            )
        if self.failure_threshold != _DEFAULT_FAILURE_THRESHOLD:
            raise ValueError(
                f"{owner}.failure_threshold ({self.failure_threshold}) and trip"
                f" ({trip!r}) both say when to open: give one of them"
            )

    @property
    def trip_policy(self) -> TripPolicy:
        """
        The one rule for opening a closed circuit, as the breaker reads it.

        *trip* when given, else ``ConsecutiveFailures(threshold=failure_threshold)``.
        """
        if self.trip is not None:
            return self.trip
        return ConsecutiveFailures(threshold=self.failure_threshold)

    def _check_recovery_growth(self, owner: str) -> None:
        multiplier = self.recovery_multiplier
        if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)):
            raise TypeError(
                f"{owner}.recovery_multiplier must be a number, got {multiplier!r}"
            )
        if not (is_finite(multiplier) and multiplier >= 1):
            raise ValueError(
                f"{owner}.recovery_multiplier must be a finite number >= 1,"
                f" got {multiplier!r}"
            )
        longest = self.max_recovery_timeout
        if longest is None:
            if multiplier > 1:
                raise ValueError(
                    f"{owner}.recovery_multiplier ({multiplier!r}) needs"
                    " max_recovery_timeout, the longest the timeout may grow"
                )
            return
        check_seconds(owner, "max_recovery_timeout", longest)
        if multiplier == 1:
            raise ValueError(
                f"{owner}.max_recovery_timeout ({longest!r}) does nothing unless"
                " recovery_multiplier is above 1"
            )
        if longest < self.recovery_timeout:
            raise ValueError(
                f"{owner}.max_recovery_timeout must be >= recovery_timeout"
                f" ({self.recovery_timeout!r}), got {longest!r}"
            )

    def recovery_timeout_after(self, failed_probes: int) -> float:
        """
        Return the recovery timeout after *failed_probes* re-opens in a row.

        ``recovery_timeout * recovery_multiplier ** failed_probes``, capped at
        ``max_recovery_timeout``.
        """
        longest = self.max_recovery_timeout
        if failed_probes == 0 or longest is None:
            return self.recovery_timeout
        try:
            grown = self.recovery_timeout * self.recovery_multiplier**failed_probes
        except OverflowError:  # long past the cap: an outage of days
            return longest
        return min(longest, grown)

    def counts_as_failure(self, error: Exception) -> bool:
        """Whether *error*, raised by a protected call, counts as a failure."""
        included = self.included_exceptions
        if included and not isinstance(error, included):
            return False
        return not isinstance(error, self.excluded_exceptions)
