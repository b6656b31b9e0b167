"""The backoff strategies' delays, exactly and within bounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiobreakers import BackoffStrategy, RetryConfig, SystemRandom
from aiobreakers.testing import FakeRandom


def delays(strategy: BackoffStrategy, fraction: float, retries: int = 6) -> list[float]:
    config = RetryConfig(
        max_retries=retries, base_delay=1.0, max_delay=10.0, strategy=strategy
    )
    return config.delays(FakeRandom(fraction))


def test_exponential_doubles_up_to_the_cap() -> None:
    """EXPONENTIAL: base * 2**(k-1), capped at max_delay; no randomness."""
    assert delays(BackoffStrategy.EXPONENTIAL, 0.0) == [1, 2, 4, 8, 10, 10]
    random = FakeRandom([])
    RetryConfig(strategy=BackoffStrategy.EXPONENTIAL).delays(random)
    assert random.draws == []


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.0, [0, 0, 0, 0, 0, 0]),
        (0.25, [0.25, 0.5, 1, 2, 2.5, 2.5]),
        (1.0, [1, 2, 4, 8, 10, 10]),
    ],
)
def test_full_jitter_is_uniform_below_the_cap(
    fraction: float, expected: list[float]
) -> None:
    """FULL_JITTER: uniform(0, cap)."""
    assert delays(BackoffStrategy.FULL_JITTER, fraction) == expected


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.0, [0.5, 1, 2, 4, 5, 5]),
        (0.5, [0.75, 1.5, 3, 6, 7.5, 7.5]),
        (1.0, [1, 2, 4, 8, 10, 10]),
    ],
)
def test_equal_jitter_keeps_half_the_cap(
    fraction: float, expected: list[float]
) -> None:
    """EQUAL_JITTER: cap/2 + uniform(0, cap/2)."""
    assert delays(BackoffStrategy.EQUAL_JITTER, fraction) == expected


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.0, [1, 1, 1, 1, 1, 1]),
        (0.5, [2, 3.5, 5.75, 9.125, 10, 10]),
        (1.0, [3, 9, 10, 10, 10, 10]),
    ],
)
def test_decorrelated_grows_from_the_previous_delay(
    fraction: float, expected: list[float]
) -> None:
    """DECORRELATED: min(max_delay, uniform(base, 3 * previous))."""
    assert delays(BackoffStrategy.DECORRELATED, fraction) == expected


def test_decorrelated_draws_from_base_to_three_times_previous() -> None:
    """Each decorrelated draw spans base_delay .. 3 * the previous delay."""
    random = FakeRandom([0.5, 0.0, 1.0])
    RetryConfig(
        max_retries=3,
        base_delay=1,
        max_delay=100,
        strategy=BackoffStrategy.DECORRELATED,
    ).delays(random)
    assert random.draws == [(1, 3, 2), (1, 6, 1), (1, 3, 3)]


def test_huge_retry_numbers_do_not_overflow() -> None:
    """The cap stays at max_delay for retry numbers far beyond float range."""
    assert (
        BackoffStrategy.EXPONENTIAL.delay(
            5000, base_delay=1.0, max_delay=30.0, previous=1.0, random=FakeRandom()
        )
        == 30.0
    )
    assert (
        BackoffStrategy.EXPONENTIAL.delay(
            5000, base_delay=0.0, max_delay=30.0, previous=0.0, random=FakeRandom()
        )
        == 0.0
    )


@pytest.mark.parametrize(
    ("strategy", "low", "high"),
    [
        (BackoffStrategy.FULL_JITTER, lambda cap: 0.0, lambda cap: cap),
        (BackoffStrategy.EQUAL_JITTER, lambda cap: cap / 2, lambda cap: cap),
    ],
)
def test_jittered_delays_stay_within_bounds_over_many_draws(
    strategy: BackoffStrategy, low: object, high: object
) -> None:
    """With a real seeded generator, every draw lies in its range, and spreads."""
    random = SystemRandom(seed=1234)
    for retry in range(1, 8):
        cap = min(10.0, 0.5 * 2 ** (retry - 1))
        seen = [
            strategy.delay(
                retry, base_delay=0.5, max_delay=10.0, previous=0.5, random=random
            )
            for _ in range(2000)
        ]
        lo, hi = low(cap), high(cap)  # type: ignore[operator]
        assert all(lo <= d <= hi for d in seen)
        # The draws cover the range: both ends' tenths are reached.
        assert min(seen) < lo + (hi - lo) / 10
        assert max(seen) > hi - (hi - lo) / 10


def test_decorrelated_delays_stay_within_bounds_over_many_draws() -> None:
    """Real random decorrelated sequences stay in [base, max] and grow."""
    random = SystemRandom(seed=99)
    config = RetryConfig(
        max_retries=10,
        base_delay=0.5,
        max_delay=20.0,
        strategy=BackoffStrategy.DECORRELATED,
    )
    for _ in range(500):
        sequence = config.delays(random)
        previous = 0.5
        for delay in sequence:
            assert 0.5 <= delay <= min(20.0, 3 * previous)
            previous = delay


@given(
    strategy=st.sampled_from(BackoffStrategy),
    base=st.floats(0, 1e6, allow_nan=False),
    extra=st.floats(0, 1e9, allow_nan=False),
    retries=st.integers(0, 60),
    seed=st.integers(0, 2**32),
)
def test_no_delay_is_negative_or_above_max_delay(
    strategy: BackoffStrategy, base: float, extra: float, retries: int, seed: int
) -> None:
    """For any configuration, 0 <= delay <= max_delay."""
    config = RetryConfig(
        max_retries=retries, base_delay=base, max_delay=base + extra, strategy=strategy
    )
    for delay in config.delays(SystemRandom(seed)):
        assert 0.0 <= delay <= config.max_delay


def test_strategies_are_strings() -> None:
    """BackoffStrategy members compare equal to their values."""
    strategy: BackoffStrategy = BackoffStrategy.FULL_JITTER
    assert strategy == "full_jitter"
    assert f"{strategy}" == "full_jitter"
