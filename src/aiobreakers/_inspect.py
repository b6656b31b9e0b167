"""What kind of callable is being protected, and wrappers made to measure."""

from __future__ import annotations
import __future__

import functools
import inspect
import itertools
import keyword
import linecache
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeVar


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


# How the protectors spell their generic parameters and calls (see specialize).
_GENERIC_DEF = "def protected(*args: Any, **kwargs: Any) -> Any:"
_GENERIC_CALL = "(*args, **kwargs)"
_PREFIX = "_aiobreakers_"
_REST = f"{_PREFIX}args"
_KEYWORDS = f"{_PREFIX}kwargs"

_F = TypeVar("_F", bound=Callable[..., Any])
_serial = itertools.count()


def specialize(protector: _F, func: Callable[..., Any]) -> _F:
    """
    Return *protector*, re-created for *func*'s own parameters when it can be.

    A protector is a module-level function that builds the wrapper (named
    ``protected``) around one decorated function. It is written once, generic:
    ``protected(*args, **kwargs)`` passes ``(*args, **kwargs)`` on. Packing
    and unpacking those costs a healthy call as much as all of a breaker's
    bookkeeping, so for a plain function or method this compiles a copy of the
    protector's own source that names the function's required parameters:
    ``protected(url, *args, **kwargs)`` for ``def fetch(url, timeout=5.0)``.

    Parameters with defaults stay in ``*args`` / ``**kwargs``, so that what a
    caller leaves out is left out of the call too (defaults are the
    function's, as it has them then). A call with arguments that do not fit
    fails before the breaker or policy sees it. For anything unusual (not a
    plain function, a ``__signature__`` of its own, a parameter name the
    protector uses, no source), the generic protector is returned as it is.
    """
    template = _template(protector)
    spelled = _spell_parameters(func)
    if template is None or spelled is None:
        return protector
    source, names, namespace = template
    parameters, call, used = spelled
    if names & used:
        return protector
    specialized = source.replace(_GENERIC_DEF, f"def protected({parameters}):")
    specialized = specialized.replace(_GENERIC_CALL, f"({call})")
    # A name of its own, with the source registered, so tracebacks show lines.
    filename = f"<aiobreakers {protector.__qualname__} #{next(_serial)}>"
    lines = specialized.splitlines(keepends=True)
    linecache.cache[filename] = (len(specialized), None, lines, filename)
    scope = dict(namespace)
    try:
        # Annotations stay unevaluated, as in the protector's own module.
        flags = __future__.annotations.compiler_flag
        exec(compile(specialized, filename, "exec", flags=flags), scope)  # noqa: S102 - our own source
    except SyntaxError:
        return protector
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


def _spell_parameters(
    func: Callable[..., Any],
) -> tuple[str, str, set[str]] | None:
    """
    Spell the wrapper's parameters, the call passing them on, and the names.

    Only plain functions and methods qualify: their signature is what they
    accept (a ``__signature__`` may say otherwise, a wrapper may take other
    arguments than what it wraps).
    """
    if not (inspect.isfunction(func) or inspect.ismethod(func)):
        return None
    if "__signature__" in vars(getattr(func, "__func__", func)):
        return None
    try:
        signature = inspect.signature(func, follow_wrapped=False)
    except (TypeError, ValueError):
        return None
    parameters = list(signature.parameters.values())
    if any(keyword.iskeyword(p.name) or not p.name.isidentifier() for p in parameters):
        return None
    P = inspect.Parameter  # noqa: N806 - the kinds read better short
    positional = (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)
    # Named: the required positionals up to the first optional one, and the
    # required keyword-only ones. The rest travel in *args and **kwargs.
    leading = list(
        itertools.takewhile(
            lambda p: p.kind in positional and p.default is P.empty, parameters
        )
    )
    keyword_only = [
        p for p in parameters if p.kind is P.KEYWORD_ONLY and p.default is P.empty
    ]
    others = parameters[len(leading) :]
    rest = any(p.kind in positional or p.kind is P.VAR_POSITIONAL for p in others)
    by_keyword = any(
        p.kind is P.VAR_KEYWORD
        or (
            p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)
            and p not in keyword_only
        )
        for p in others
    )
    declared = [p.name for p in leading]
    passed = [p.name for p in leading]
    if any(p.kind is P.POSITIONAL_ONLY for p in leading):
        last = max(i for i, p in enumerate(leading) if p.kind is P.POSITIONAL_ONLY)
        declared.insert(last + 1, "/")
    if rest:
        declared.append(f"*{_REST}")
        passed.append(f"*{_REST}")
    elif keyword_only:
        declared.append("*")
    declared += [p.name for p in keyword_only]
    passed += [f"{p.name}={p.name}" for p in keyword_only]
    if by_keyword:
        declared.append(f"**{_KEYWORDS}")
        passed.append(f"**{_KEYWORDS}")
    names = {p.name for p in leading + keyword_only} | {_REST, _KEYWORDS}
    return ", ".join(declared), ", ".join(passed), names
