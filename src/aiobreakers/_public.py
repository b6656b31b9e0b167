"""Making public objects say where users import them from."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["publish"]


def publish(module_name: str, namespace: dict[str, Any]) -> None:
    """
    Set ``__module__`` to *module_name* on the classes and functions it exports.

    Objects are defined in private modules; their reprs, pickles and
    documentation links should name the public one (``aiobreakers.RetryConfig``,
    not ``aiobreakers._retry.RetryConfig``).
    """
    for name in namespace["__all__"]:
        value = namespace[name]
        if inspect.isclass(value) or inspect.isfunction(value):
            value.__module__ = module_name
