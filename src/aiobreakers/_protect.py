"""
What breakers and retry policies share when they wrap a function.

Both decorate the same kinds of callables the same way: a plain wrapper over
``*args, **kwargs`` (:func:`functools.wraps` copies the name, docstring and
signature), sync or async as the function is, with ``staticmethod`` and
``classmethod`` objects unwrapped and wrapped again. Nothing is generated or
cached per function: dropping the decorated function frees everything.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["check_decoratable", "decorate", "is_async_callable"]


def is_async_callable(func: object) -> bool:
    """Whether calling *func* returns a coroutine (functions and objects alike)."""
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    if inspect.isclass(func) or inspect.isroutine(func):
        # Calling a class makes an instance, whatever its __call__ does.
        return False
    # An object is called through its type's __call__.
    return inspect.iscoroutinefunction(getattr(type(func), "__call__", None))  # noqa: B004


def check_decoratable(func: object, what: str) -> None:
    """
    Raise :class:`TypeError` unless *func* can be protected by *what*.

    Generator functions return before their work is done, so protecting one
    would time and count nothing meaningful.
    """
    if not callable(func):
        raise TypeError(f"a {what} decorates callables, got {func!r}")
    try:
        generator = inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(
            func
        )
    except TypeError:  # objects that fake attributes, such as Mock(spec=...)
        generator = False
    if generator:
        raise TypeError(
            f"cannot protect generator function {getattr(func, '__qualname__', func)}"
            f" with a {what}:"
            " it returns before its work is done; protect the calls it makes instead"
        )


def decorate(
    func: Any,
    what: str,
    protect_sync: Callable[[Callable[..., Any]], Callable[..., Any]],
    protect_async: Callable[[Callable[..., Any]], Callable[..., Any]],
) -> Any:
    """
    Return *func* wrapped by *protect_sync* or *protect_async*, as it is sync or not.

    A ``staticmethod`` or ``classmethod`` is unwrapped, its function
    protected, and the result wrapped again the same way, so that the
    decorators may go above or below it.

    Raises:
        TypeError: *func* cannot be protected (see :func:`check_decoratable`).
    """
    if isinstance(func, (staticmethod, classmethod)):
        kind = type(func)
        return kind(decorate(func.__func__, what, protect_sync, protect_async))
    check_decoratable(func, what)
    protect = protect_async if is_async_callable(func) else protect_sync
    return functools.wraps(func)(protect(func))
