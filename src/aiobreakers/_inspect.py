"""What kind of callable is being protected: decided once, at decoration."""

from __future__ import annotations

import inspect


def is_async_callable(func: object) -> bool:
    """Whether calling *func* returns a coroutine (functions and objects alike)."""
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - an object's async __call__
    )


def check_decoratable(func: object, what: str) -> None:
    """
    Raise :class:`TypeError` unless *func* can be protected by *what*.

    Generator functions return before their work is done, so protecting one
    would time and count nothing meaningful.
    """
    if not callable(func):
        raise TypeError(f"a {what} decorates callables, got {func!r}")
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(
            f"cannot protect generator function {getattr(func, '__qualname__', func)}"
            f" with a {what}:"
            " it returns before its work is done; protect the calls it makes instead"
        )
