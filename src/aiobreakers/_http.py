"""Reading the delay an HTTP server asks for."""

from __future__ import annotations

import email.utils
import math
import time

__all__ = ["parse_retry_after"]

# Longer than anyone retries after: such a value is junk, not a request.
_LONGEST = 10 * 365 * 86_400.0


def parse_retry_after(  # noqa: PLR0911 - one return per form and per kind of junk
    value: str | None, *, now: float | None = None
) -> float | None:
    """
    Return the seconds an HTTP ``Retry-After`` header asks to wait, or None.

    Both forms of RFC 9110 are read: delta-seconds (``"120"``) and an
    HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``, counted from *now*, the
    wall-clock time, :func:`time.time` by default; a date in the past means
    0). Anything else (``None``, an empty or negative value, junk) gives
    ``None``: use the strategy's delay. Meant for ``RetryConfig.delay_from``.

    Args:
        value: The header's value, as received.
        now: Seconds since the epoch to count an HTTP-date from.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():  # str.isdigit alone accepts "²"
        seconds = float(text)
        return seconds if seconds <= _LONGEST else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are in GMT
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds) or seconds > _LONGEST:
        return None
    return max(0.0, seconds)
