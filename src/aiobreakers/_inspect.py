"""What kind of callable is being protected: decided once, at decoration."""

from __future__ import annotations
import __future__

import functools
import inspect
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeVar


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


# How the protectors spell their generic parameters and calls (see specialize).
_GENERIC_DEF = "def protected(*args: Any, **kwargs: Any) -> Any:"
_GENERIC_CALL = "(*args, **kwargs)"
_PREFIX = "_aiobreakers_"

_F = TypeVar("_F", bound=Callable[..., Any])


def specialize(protector: _F, func: Callable[..., Any]) -> _F:
    """
    Return *protector*, re-created for *func*'s own parameters when it can be.

    A protector is a module-level function that builds the wrapper (named
    ``protected``) around one decorated function. It is written once, generic:
    ``protected(*args, **kwargs)`` passes ``(*args, **kwargs)`` on. Packing
    and unpacking those costs a healthy call as much as all of a breaker's
    bookkeeping, so for a function whose signature is known, this compiles a
    copy of the protector's own source with that signature in their place:
    ``protected(url, timeout=...)`` passing ``(url, timeout=timeout)``.

    The copy behaves the same, except that a call with arguments that do not
    fit fails before the breaker or policy sees it. Where anything is unusual
    (no signature, a parameter name the protector uses, no source), the
    generic protector is returned as it is.
    """
    template = _template(protector)
    spelled = _spell_parameters(func)
    if template is None or spelled is None:
        return protector
    source, names, namespace = template
    parameters, call, defaults = spelled
    if names & set(defaults) or any(name in names for name in _parameter_names(func)):
        return protector
    specialized = source.replace(_GENERIC_DEF, f"def protected({parameters}):")
    specialized = specialized.replace(_GENERIC_CALL, f"({call})")
    scope = {**namespace, **defaults}
    # Annotations stay unevaluated, as in the protector's own module.
    flags = __future__.annotations.compiler_flag
    code = compile(specialized, _filename(protector), "exec", flags=flags)
    exec(code, scope)  # noqa: S102 - our own source, with the parameters spelled
    made: _F = scope[protector.__name__]
    return made


@functools.cache
def _template(
    protector: Callable[..., Any],
) -> tuple[str, frozenset[str], dict[str, Any]] | None:
    """Return the protector's source, every name it uses, and its namespace."""
    try:
        source = textwrap.dedent(inspect.getsource(protector))
    except (OSError, TypeError):  # no source: a frozen or zipped install
        return None
    if source.count(_GENERIC_DEF) != 1 or _GENERIC_CALL not in source:
        return None
    names: set[str] = set()
    for code in _code_objects(protector.__code__):
        names.update(code.co_names, code.co_varnames, code.co_freevars)
    module = inspect.getmodule(protector)
    if module is None:
        return None
    return source, frozenset(names), vars(module)


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_objects(constant)


def _filename(protector: Callable[..., Any]) -> str:
    return f"<aiobreakers specialized {protector.__qualname__}>"


def _parameter_names(func: Callable[..., Any]) -> list[str]:
    try:
        return list(inspect.signature(func, follow_wrapped=False).parameters)
    except (TypeError, ValueError):
        return []


def _spell_parameters(
    func: Callable[..., Any],
) -> tuple[str, str, dict[str, Any]] | None:
    """
    Spell *func*'s parameters, the call passing them on, and their defaults.

    The signature is the callable's own, not a wrapped function's: a
    decorator's wrapper may accept other arguments than what it wraps.
    """
    try:
        signature = inspect.signature(func, follow_wrapped=False)
    except (TypeError, ValueError):
        return None
    parameters: list[str] = []
    call: list[str] = []
    defaults: dict[str, Any] = {}
    for index, parameter in enumerate(signature.parameters.values()):
        spelled = _spell(parameter, index, defaults)
        if spelled is None:
            return None
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and not any(
            p.startswith("*") for p in parameters
        ):
            parameters.append("*")
        parameters.append(spelled[0])
        call.append(spelled[1])
    kinds = [p.kind for p in signature.parameters.values()]
    if inspect.Parameter.POSITIONAL_ONLY in kinds:
        # "/" after the last positional-only parameter (none precede "*").
        last = len(kinds) - 1 - kinds[::-1].index(inspect.Parameter.POSITIONAL_ONLY)
        parameters.insert(last + 1, "/")
    return ", ".join(parameters), ", ".join(call), defaults


def _spell(
    parameter: inspect.Parameter, index: int, defaults: dict[str, Any]
) -> tuple[str, str] | None:
    """Return how *parameter* is declared and passed on, recording its default."""
    name = parameter.name
    if not name.isidentifier() or name.startswith(_PREFIX):
        return None
    declared = name
    if parameter.default is not inspect.Parameter.empty:
        default = f"{_PREFIX}default_{index}"
        defaults[default] = parameter.default
        declared = f"{name}={default}"
    if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
        return f"*{name}", f"*{name}"
    if parameter.kind is inspect.Parameter.VAR_KEYWORD:
        return f"**{name}", f"**{name}"
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
        return declared, f"{name}={name}"
    return declared, name
