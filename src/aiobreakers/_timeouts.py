"""Cutting an async attempt short, on a policy's own clock and sleeper."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

from ._ports import SystemSleeper
from ._sniff import in_trio

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from ._ports import Sleeper

__all__ = ["within"]

# asyncio.timeout (Python 3.11+) cuts a block in the running task; on 3.10 the
# task-based cut serves every sleeper.
_LOOP_TIMEOUT = getattr(asyncio, "timeout", None)


async def within(seconds: float, awaitable: Awaitable[Any], sleeper: Sleeper) -> Any:
    """
    Await *awaitable*, or cancel it and raise :class:`TimeoutError` after *seconds*.

    The time limit is a sleep on *sleeper*, not on the event loop's clock, so
    a :class:`~aiobreakers.testing.FakeClock` drives it in tests with no real
    waiting. Cancelling the caller cancels both. With the real sleeper the
    event loop's own timeout does the same in the caller's task, without
    starting two more tasks per attempt. In a trio task a cancel scope cuts
    the attempt (see :func:`_within_trio`).
    """
    if in_trio():
        return await _within_trio(seconds, awaitable, sleeper)
    if type(sleeper) is SystemSleeper and _LOOP_TIMEOUT is not None:
        scope = _LOOP_TIMEOUT(seconds)
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if not scope.expired():
                raise  # the attempt's own TimeoutError
            message = f"the attempt took longer than {seconds:g} s"
            raise TimeoutError(message) from None
    return await _within_tasks(seconds, awaitable, sleeper)


async def _within_tasks(
    seconds: float, awaitable: Awaitable[Any], sleeper: Sleeper
) -> Any:
    """:func:`within` for any sleeper: the attempt and the sleep as two tasks."""
    work = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(sleeper.sleep_async(seconds))
    try:
        await asyncio.wait((work, timer), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the caller was cancelled: so is the attempt
        work.cancel()
        timer.cancel()
        raise
    timer.cancel()
    if work.done():
        return work.result()
    work.cancel()
    # Let the attempt wind down. Unlike awaiting the task, asyncio.wait raises
    # CancelledError only when the caller itself is cancelled meanwhile, which
    # must propagate, not become a (retryable) TimeoutError.
    await asyncio.wait((work,))
    if not work.cancelled():
        work.exception()  # retrieved: the timeout is what the caller sees
    message = f"the attempt took longer than {seconds:g} s"
    raise TimeoutError(message)


async def _within_trio(
    seconds: float, awaitable: Awaitable[Any], sleeper: Sleeper
) -> Any:
    """
    :func:`within` in a trio task: the attempt runs in a cancel scope.

    With the real sleeper, the scope's own deadline (on trio's clock, so a
    ``MockClock`` drives it) cuts the attempt. Any other sleeper sleeps in a
    child task that cancels the scope when it wakes. Either way the attempt
    runs in the caller's task, so its own exceptions propagate unwrapped, and
    a cancellation of the caller is never turned into a TimeoutError.
    """
    import trio  # noqa: PLC0415 - already imported: a trio task runs

    message = f"the attempt took longer than {seconds:g} s"
    if type(sleeper) is SystemSleeper:
        with trio.move_on_after(seconds):
            return await awaitable
        raise TimeoutError(message)  # only the scope's own cut gets here

    scope = trio.CancelScope()

    async def cut() -> None:
        await sleeper.sleep_async(seconds)
        scope.cancel()

    result: Any = None
    failure: Exception | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cut)
            with scope:
                try:
                    result = await awaitable
                except Exception as error:  # noqa: BLE001 - raised outside the nursery
                    failure = error
            nursery.cancel_scope.cancel()  # the attempt is over: stop the timer
    except BaseException as group:
        # The nursery wraps what leaves it in a group: the caller's
        # cancellation (caught in the attempt, the timer or both), a
        # KeyboardInterrupt, a broken sleeper's error. Pass it on as itself,
        # as it would leave an attempt without a timeout.
        sole = _sole(group, trio.Cancelled)
        if sole is group:
            raise
        try:
            raise sole from None
        finally:
            del sole, group  # no frame-traceback cycle
    if failure is not None:
        try:
            raise failure
        finally:
            del failure  # no frame-traceback cycle
    if scope.cancelled_caught:
        raise TimeoutError(message)
    return result


def _sole(error: BaseException, cancelled: type[BaseException]) -> BaseException:
    """
    Return the one exception in *error*, a nursery's group, if it holds one.

    A group of nothing but *cancelled* (trio's ``Cancelled``, once per task
    the cancellation reached) counts as one. Anything else is *error* itself.
    """
    group_type: type[BaseException]
    if sys.version_info >= (3, 11):
        group_type = BaseExceptionGroup  # noqa: F821 - a builtin from 3.11 on
    else:  # trio depends on the backport below 3.11
        import exceptiongroup  # noqa: PLC0415 - only where trio runs

        group_type = exceptiongroup.BaseExceptionGroup
    if not isinstance(error, group_type):
        return error
    members: tuple[BaseException, ...] = error.exceptions  # type: ignore[attr-defined]
    leaves = [_sole(member, cancelled) for member in members]
    if len(leaves) == 1 or all(isinstance(leaf, cancelled) for leaf in leaves):
        return leaves[0]
    return error
