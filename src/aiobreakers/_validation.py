"""Checks shared by the configuration classes: each error names the field."""

from __future__ import annotations

import math


def check_name(name: object) -> None:
    """Require a non-empty string: a breaker's or policy's name."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r}")
    if not name:
        raise ValueError("name must not be empty")


def check_int(owner: str, field: str, value: object, minimum: int) -> None:
    """Require a whole number (not a bool) no smaller than *minimum*."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{owner}.{field} must be an int, got {type(value).__name__} {value!r}"
        )
    if value < minimum:
        raise ValueError(f"{owner}.{field} must be >= {minimum}, got {value!r}")


def is_finite(value: float) -> bool:
    """Whether *value* is a finite number (an int too big for a float is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_seconds(owner: str, field: str, value: object) -> None:
    """Require a finite, non-negative number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{owner}.{field} must be a number of seconds, "
            f"got {type(value).__name__} {value!r}"
        )
    if not is_finite(value) or value < 0:
        raise ValueError(f"{owner}.{field} must be a finite number >= 0, got {value!r}")


def check_exceptions(owner: str, field: str, value: object) -> None:
    """Require a tuple of :class:`Exception` subclasses."""
    if not isinstance(value, tuple):
        raise TypeError(
            f"{owner}.{field} must be a tuple of Exception subclasses, "
            f"got {type(value).__name__} {value!r}"
        )
    for item in value:
        if not (isinstance(item, type) and issubclass(item, Exception)):
            raise ValueError(  # noqa: TRY004 - a wrong value in a right container
                f"{owner}.{field} must hold only Exception subclasses, got {item!r}"
                " (BaseExceptions such as cancellation are never counted)"
            )


def span(start: float, end: float) -> float | None:
    """
    Return the seconds from *start* to *end* on one clock: never negative.

    ``None`` when either reading is not finite (a broken or swapped clock):
    there is no duration to report. A clock that went backwards gives 0.0.
    """
    duration = end - start
    if not is_finite(duration):
        return None
    return max(0.0, duration)
