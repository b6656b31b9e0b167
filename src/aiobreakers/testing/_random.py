"""A random source whose draws a test chooses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiobreakers._validation import is_finite

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["FakeRandom"]


class FakeRandom:
    """
    A deterministic :class:`~aiobreakers.RandomSource`, for exact jitter.

    Each draw is a fraction ``r`` between 0 and 1, and ``uniform(a, b)``
    answers ``a + r * (b - a)``: ``FakeRandom(0.25).uniform(0, 8) == 2.0``.
    ``FakeRandom(0.0)`` always gives the low end, ``FakeRandom(1.0)`` the high
    end.

    Args:
        fractions: One fraction used for every draw, or a sequence of
            fractions used one per draw, in order. A scripted sequence that
            runs out raises :class:`LookupError` rather than inventing draws.

    Attributes:
        draws: Every ``(a, b, result)`` drawn so far, in order.

    Raises:
        ValueError: A fraction is not between 0 and 1.
    """

    def __init__(self, fractions: float | Iterable[float] = 0.5) -> None:
        self._constant: float | None = None
        self._script: list[float] = []
        self._next = 0
        self.draws: list[tuple[float, float, float]] = []
        self.set(fractions)

    def set(self, fractions: float | Iterable[float]) -> None:
        """
        Replace the fractions of future draws (``draws`` is kept).

        Args:
            fractions: One fraction for every draw, or a sequence used in
                order, as for the constructor.
        """
        if isinstance(fractions, (int, float)):
            constant, script = _check_fraction(fractions), []
        else:
            constant, script = None, [_check_fraction(f) for f in fractions]
        self._constant, self._script, self._next = constant, script, 0

    def __repr__(self) -> str:
        if self._constant is not None:
            return f"FakeRandom({self._constant!r})"
        return f"FakeRandom({self._script!r})"

    def uniform(self, a: float, b: float) -> float:
        """
        Return ``a + r * (b - a)`` for the next fraction ``r``.

        Raises:
            LookupError: A scripted sequence has no fraction left.
        """
        fraction = self._constant
        if fraction is None:
            if self._next >= len(self._script):
                raise LookupError(
                    f"FakeRandom ran out of scripted fractions after "
                    f"{len(self._script)} draws; script more, or pass one fraction"
                )
            fraction = self._script[self._next]
            self._next += 1
        result = a + fraction * (b - a)
        self.draws.append((a, b, result))
        return result


def _check_fraction(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a FakeRandom fraction must be a number, got {value!r}")
    if not (is_finite(value) and 0.0 <= value <= 1.0):
        raise ValueError(
            f"a FakeRandom fraction must be between 0 and 1, got {value!r}"
        )
    return float(value)
