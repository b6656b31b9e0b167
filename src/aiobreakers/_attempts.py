"""Retrying a block that is not a function: ``for attempt in retry.attempts()``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

    from typing_extensions import Self

    from ._retry import RetryPolicy, _Call

__all__ = ["Attempt", "Attempts"]


class Attempt:
    """
    One attempt of a retried block: use it as ``with attempt:``.

    A retryable error raised in the block is swallowed, and the loop waits
    and goes on to the next attempt; the final error (not retryable, or out
    of retries, time or budget) propagates from the ``with``, unchanged.
    """

    __slots__ = ("_attempts", "number")

    def __init__(self, attempts: Attempts, number: int) -> None:
        self._attempts = attempts
        self.number: int = number
        """The attempt's number: 1 for the first."""

    def __repr__(self) -> str:
        return f"<Attempt {self.number}>"

    def __enter__(self) -> Self:
        """Start the attempt."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        """Record the attempt; swallow its error if it will be retried."""
        return self._attempts._finished(self, exc)  # noqa: SLF001 - one unit


class Attempts:
    """
    The attempts of one run of a block, as :meth:`RetryPolicy.attempts` gives.

    Iterate it with ``for`` in sync code and ``async for`` in coroutines
    (waits then use the policy's sleeper, blocking or not). It ends after an
    attempt succeeds; the final failure propagates from that attempt's
    ``with``. Each run deposits once into the policy's budget, and follows its
    deadline, hooks, events and metrics like a decorated call.
    """

    __slots__ = ("_call", "_current", "_delay", "_done", "_policy")

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._call: _Call | None = None
        self._current: Attempt | None = None
        self._delay: float | None = None
        self._done = False

    def __iter__(self) -> Iterator[Attempt]:
        """Run the attempts, waiting in between with the sleeper's blocking sleep."""
        while True:
            delay = self._next_delay()
            if delay is None:
                return
            if delay > 0:
                self._policy._sleeper_now().sleep_sync(delay)  # noqa: SLF001
            yield self._start()

    # ``async for`` steps this object itself, not an async generator: one left
    # suspended when the final error leaves the loop would be finalized by the
    # event loop later (trio warns about each one, asking for ``aclosing``).
    def __aiter__(self) -> Self:
        """Run the attempts, waiting in between with the sleeper's async sleep."""
        return self

    async def __anext__(self) -> Attempt:
        """Wait before the next attempt and start it; stop when the run is over."""
        delay = self._next_delay()
        if delay is None:
            raise StopAsyncIteration
        if delay > 0:
            await self._policy._sleeper_now().sleep_async(delay)  # noqa: SLF001
        return self._start()

    def _next_delay(self) -> float | None:
        """Return the wait before the next attempt, or None when the run is over."""
        if self._done:
            return None
        current = self._current
        if current is None:
            return 0.0 if self._call is None else None
        if self._delay is None:
            raise RuntimeError(
                f"attempt {current.number} of retry policy"
                f" {self._policy.name!r} was not run: use each attempt as"
                " `with attempt:`"
            )
        delay, self._delay = self._delay, None
        self._current = None
        return delay

    def _start(self) -> Attempt:
        policy = self._policy
        if self._call is None:
            self._call = policy._begin_run()  # noqa: SLF001
            number = 1
        else:
            number = self._call.retry
        self._current = Attempt(self, number)
        return self._current

    def _finished(self, attempt: Attempt, error: BaseException | None) -> bool:
        """Decide on an attempt's outcome; True swallows its error."""
        if attempt is not self._current or self._call is None:
            raise RuntimeError(f"{attempt!r} is not the current attempt of its run")
        policy = self._policy
        if error is None:
            self._done = True
            policy._count_success()  # noqa: SLF001
            return False
        if not isinstance(error, Exception):  # cancellation: counted as nothing
            self._done = True
            return False
        delay = policy._plan(self._call, error)  # noqa: SLF001
        if delay is None:
            self._done = True
            return False
        self._delay = delay
        return True
