"""
Hooks: user callbacks run when a breaker or policy does something.

Sync callbacks run inline, after the owner's lock is released. An async
callback is scheduled as a task on the running event loop (the task is kept
referenced until it finishes), as a system task in a trio task, or, with no
loop running, run to completion in place. A callback that raises is logged
and reported as a :class:`~aiobreakers.HookFailed` event; it never breaks the
protected call.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from ._events import HookFailed, emit, logger
from ._sniff import in_trio

if TYPE_CHECKING:
    from ._ports import EventSink

__all__ = ["Hook", "check_hook", "report_hook_failure", "run_hooks"]

Hook: TypeAlias = Callable[..., "Awaitable[object] | object"]

# Async hook tasks, kept referenced until they finish: the event loop holds
# only weak references to tasks, so an unreferenced one may vanish mid-run.
_running_hooks: Final[set[asyncio.Task[Any]]] = set()


# What each hook is called with, for error messages.
_ARGUMENTS: Final = {
    **dict.fromkeys(
        ("on_open", "on_close", "on_half_open", "on_success", "on_failure"),
        "the breaker",
    ),
    "on_retry": "attempt, error, delay",
}
_COUNTS: Final = ("no arguments", "one argument", "two arguments", "three arguments")


def check_hook(callback: object, hook: str, arity: int) -> None:
    """
    Raise :class:`TypeError` unless *callback* can be registered as *hook*.

    It must be callable, and callable with *arity* positional arguments, the
    ones the hook passes: a mismatch would otherwise fail at every firing. A
    callable whose signature cannot be read (some builtins) is accepted.
    """
    if not callable(callback):
        raise TypeError(f"{hook} callback must be callable, got {callback!r}")
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # no signature to read: trust the caller
        return
    try:
        signature.bind(*(None,) * arity)
    except TypeError as mismatch:
        count = _COUNTS[arity] if arity < len(_COUNTS) else f"{arity} arguments"
        passed = _ARGUMENTS.get(hook)
        expected = count if passed is None else f"{count} ({passed})"
        name = getattr(callback, "__qualname__", None) or repr(callback)
        raise TypeError(
            f"{hook} callback must accept {expected}, got {name}{signature}: {mismatch}"
        ) from None


def run_hooks(
    callbacks: Sequence[Hook],
    args: tuple[Any, ...],
    *,
    owner: str,
    hook: str,
    sink: EventSink | None,
) -> None:
    """
    Run each callback with *args*; report, never raise, what they raise.

    Sync callbacks run inline. A callback that returns an awaitable (an async
    function) is scheduled as a task on the running event loop (a system task
    under trio), or, with no loop running in this thread, run to completion
    right here.
    """
    for callback in callbacks:
        _run_hook(callback, args, owner=owner, hook=hook, sink=sink)


def _run_hook(
    callback: Hook,
    args: tuple[Any, ...],
    *,
    owner: str,
    hook: str,
    sink: EventSink | None,
) -> None:
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            _schedule(result, owner=owner, hook=hook, sink=sink)
    except Exception as error:  # noqa: BLE001 - a hook must never break a call
        report_hook_failure(error, owner=owner, hook=hook, sink=sink)


def report_hook_failure(
    error: Exception, *, owner: str, hook: str, sink: EventSink | None
) -> None:
    """Log a failed hook and emit :class:`HookFailed`."""
    logger.error("%s hook of %r failed", hook, owner, exc_info=error)
    emit(sink, HookFailed(name=owner, hook=hook, error=error))


def _schedule(
    awaitable: Awaitable[object], *, owner: str, hook: str, sink: EventSink | None
) -> None:
    if in_trio():
        _schedule_trio(awaitable, owner=owner, hook=hook, sink=sink)
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        # No loop in this thread: run it in place rather than drop it or
        # leave a coroutine never awaited.
        asyncio.run(_await(awaitable))
        return
    task = loop.create_task(_await(awaitable))
    _running_hooks.add(task)

    def done(task: asyncio.Task[Any]) -> None:
        _running_hooks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, Exception):
            report_hook_failure(error, owner=owner, hook=hook, sink=sink)

    task.add_done_callback(done)


async def _await(awaitable: Awaitable[object]) -> object:
    return await awaitable


def _schedule_trio(
    awaitable: Awaitable[object], *, owner: str, hook: str, sink: EventSink | None
) -> None:
    """
    Run an async hook as a trio system task, in the caller's context.

    A system task needs no nursery from the caller, and trio keeps it
    referenced until it finishes. Its errors must not escape it (trio would
    crash the whole run), so they are reported like a sync hook's.
    """
    import trio  # noqa: PLC0415 - already imported: a trio task runs

    async def run() -> None:
        try:
            await awaitable
        except Exception as error:  # noqa: BLE001 - a hook must never break a run
            report_hook_failure(error, owner=owner, hook=hook, sink=sink)

    trio.lowlevel.spawn_system_task(
        run, name=f"aiobreakers {hook} hook", context=contextvars.copy_context()
    )
