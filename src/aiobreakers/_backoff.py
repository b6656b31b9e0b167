"""Backoff strategies: pure functions from a retry number to a delay."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._enums import StrValueEnum

if TYPE_CHECKING:
    from ._ports import RandomSource

__all__ = ["BackoffStrategy"]

# 2.0 ** 1024 overflows a float; any cap this large is beyond every max_delay.
_MAX_DOUBLINGS = 1023


class BackoffStrategy(StrValueEnum):
    """
    How a retry policy spaces its retries.

    With ``cap = min(max_delay, base_delay * 2 ** (k - 1))`` for retry ``k``
    (1 for the first), the delay before retry ``k`` is:

    =================  =====================================================
    ``EXPONENTIAL``    ``cap``
    ``FULL_JITTER``    ``uniform(0, cap)``
    ``EQUAL_JITTER``   ``cap / 2 + uniform(0, cap / 2)``
    ``DECORRELATED``   ``min(max_delay, uniform(base_delay, 3 * previous))``,
                       where ``previous`` is the delay before the previous
                       retry of the same call, ``base_delay`` at first
    =================  =====================================================

    These are the strategies of the AWS Architecture Blog's "Exponential
    Backoff And Jitter". ``FULL_JITTER`` spreads retries of many clients the
    most and is the default.

    Each draw ``uniform(a, b)`` is clamped into the range it was asked for,
    whatever the :class:`~aiobreakers.RandomSource` answers: a value above
    ``b`` becomes ``b``, one below ``a`` (or NaN) becomes ``a``. So no delay
    ever leaves ``[0, max_delay]``, whatever the source draws.
    """

    EXPONENTIAL = "exponential"
    """Doubling delays, no randomness: predictable."""
    FULL_JITTER = "full_jitter"
    """Random delays between 0 and the doubling cap: spreads retry storms."""
    EQUAL_JITTER = "equal_jitter"
    """Half the cap, plus up to half again at random."""
    DECORRELATED = "decorrelated"
    """Random delays that grow from the previous one (up to three times it)."""

    def delay(
        self,
        retry: int,
        *,
        base_delay: float,
        max_delay: float,
        previous: float,
        random: RandomSource,
    ) -> float:
        """
        Return the delay, in seconds, before retry number *retry*.

        Args:
            retry: The retry about to happen, from 1.
            base_delay: The first cap, in seconds.
            max_delay: No delay exceeds this, in seconds.
            previous: The delay before the previous retry of the same call
                (``base_delay`` before the first); only ``DECORRELATED`` uses it.
            random: The source of jitter; ``EXPONENTIAL`` draws nothing.

        Returns:
            A delay between ``0`` and ``max_delay``.
        """
        if self is BackoffStrategy.DECORRELATED:
            drawn = _draw(random, base_delay, 3.0 * previous)
            return _clamp(drawn, 0.0, max_delay)
        cap = exponential_cap(retry, base_delay, max_delay)
        if self is BackoffStrategy.EXPONENTIAL:
            return cap
        if self is BackoffStrategy.FULL_JITTER:
            return _draw(random, 0.0, cap)
        half = cap / 2.0
        return min(cap, half + _draw(random, 0.0, half))


def _draw(random: RandomSource, a: float, b: float) -> float:
    """
    Return ``random.uniform(a, b)``, clamped into the range it was asked for.

    A user's random source may answer anything; clamping here keeps every
    delay within ``[0, max_delay]``. ``a > b`` is allowed, as for
    :func:`random.uniform`; NaN becomes the low end (*a*, in every range a
    strategy asks for).
    """
    value = random.uniform(a, b)
    return _clamp(value, a, b) if a <= b else _clamp(value, b, a)


def _clamp(value: float, low: float, high: float) -> float:
    """Return *value* moved into ``[low, high]``; NaN becomes *low*."""
    if value >= low:
        return min(value, high)
    return low


def exponential_cap(retry: int, base_delay: float, max_delay: float) -> float:
    """Return ``min(max_delay, base_delay * 2 ** (retry - 1))`` without overflow."""
    doublings = retry - 1
    if doublings > _MAX_DOUBLINGS:
        return max_delay if base_delay > 0 else 0.0
    return min(max_delay, base_delay * 2.0**doublings)
