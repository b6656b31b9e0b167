"""
Sphinx configuration for the aiobreakers documentation.

Build with ``sphinx-build -W -n -b html docs docs/_build/html`` (what
``.ci/run`` does): every warning and every unresolved reference is an error.

Links to the Python documentation go through intersphinx with a *local*
inventory: intersphinx would download Python's ``objects.inv`` at build time,
and this project's machines and CI reach package registries only. Debian's
``python3.11-doc`` package ships the inventory, and ``.ci/run`` installs it;
``AIOBREAKERS_PYTHON_INVENTORY`` may point at another. Without one, standard
library names render as plain text: ``python_use_unqualified_type_names``
shortens them, and ``nitpick_ignore`` lists the ones autodoc's type hints
name, so that ``-n`` still catches every broken reference to *our* API.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import version as _version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinx.ext.napoleon.docstring import GoogleDocstring

if TYPE_CHECKING:
    from docutils.nodes import Element, reference
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

project = "aiobreakers"
author = "The aiobreakers developers"
copyright = "the aiobreakers developers"  # noqa: A001 - Sphinx's own name
release = _version("aiobreakers")
version = ".".join(release.split(".")[:2])

# docs/_ext holds our own extension: the benchmark's table and chart.
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

extensions = [
    "bench_results",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    # Draws the backoff plots at build time from the library's own code.
    "matplotlib.sphinxext.plot_directive",
]

exclude_patterns = ["_build", "_generated"]
nitpicky = True
python_use_unqualified_type_names = True

# -- autodoc --------------------------------------------------------------------
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Names that type hints mention but that have no page to link to: the
# standard library (see the module docstring), typing constructs, and the
# type variables of generic signatures.
_STDLIB = [
    "Awaitable",
    "BaseException",
    "Callable",
    "Coroutine",
    "Exception",
    "Iterable",
    "Iterator",
    "LookupError",
    "Protocol",
    "Sequence",
    "TextIO",
    "TracebackType",
    "TypedDict",
    "TypeError",
    "ValueError",
    "GeneratorExit",
    "KeyboardInterrupt",
    "SystemExit",
    "TimeoutError",
    "asyncio.CancelledError",
    "asyncio.run",
    "asyncio.sleep",
    "dataclasses.FrozenInstanceError",
    "dataclasses.replace",
    "logging",
    "logging.Logger",
    "typing.Protocol",
    "unittest",
    "collections.abc.Awaitable",
    "collections.abc.Callable",
    "collections.abc.Coroutine",
    "collections.abc.Iterable",
    "collections.abc.Iterator",
    "random.Random",
    "time.monotonic",
    "time.sleep",
    "types.TracebackType",
    "typing.Any",
    "typing_extensions.Self",
    "Self",
    "Any",
    "enum.Enum",
    "str",
    "int",
    "float",
    "bool",
    "object",
    "None",
    "tuple",
    "list",
    "dict",
    "type",
    "random",
]
# The integrations' dependencies: no inventory to link to here either.
_THIRD_PARTY = [
    "CollectorRegistry",
    "Metric",
    "MeterProvider",
    "prometheus_client.registry.CollectorRegistry",
    "prometheus_client.metrics_core.Metric",
    "opentelemetry.metrics.MeterProvider",
    "trio.abc.Clock",  # TrioClock(clock=...): trio has no intersphinx here
    "redis.Redis",  # RedisStore(client): no redis-py inventory offline
    "Redis",
]
_TYPE_VARIABLES = ["P", "R", "Q", "T", "_F", "_FR", "_CM", "_E"]
_PRIVATE = [
    "aiobreakers._ports._Keep",
    "_Keep",
    # Store.attach returns a breaker's handle on its shared circuit: private
    # while the store seam is provisional.
    "aiobreakers._store.Link",
    "Link",
]
# The same type variables, named by the private module that defines them.
nitpick_ignore_regex = [
    (r"py:(class|obj)", r"aiobreakers\._\w+\.(_?[A-Z]|_F|_FR|_E|_CM)"),
]
nitpick_ignore = [
    (role, name)
    for name in [*_STDLIB, *_THIRD_PARTY, *_TYPE_VARIABLES, *_PRIVATE]
    for role in ("py:class", "py:exc", "py:func", "py:data", "py:obj", "py:mod")
]

# Debian's python3.11-doc package (which .ci/run installs) ships one.
_DEBIAN_INVENTORY = "/usr/share/doc/python3.11/html/objects.inv"
_inventory = os.environ.get("AIOBREAKERS_PYTHON_INVENTORY") or (
    _DEBIAN_INVENTORY if os.path.exists(_DEBIAN_INVENTORY) else None  # noqa: PTH110
)
if _inventory:
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {"python": ("https://docs.python.org/3", _inventory)}


def _attribute_docstring_as_prose(self: GoogleDocstring) -> list[str]:
    """
    Keep an attribute's docstring as written.

    Napoleon reads the first line of an attribute docstring as ``type:
    description``; ours are prose ("The state, as a string: ..."), so a
    colon in them must not turn their first words into a type.
    """
    lines: list[str] = self._consume_to_end()
    return lines


# Replaced on the class: napoleon offers no option for it.
setattr(  # noqa: B010 - mypy rejects assigning to a method directly
    GoogleDocstring, "_parse_attribute_docstring", _attribute_docstring_as_prose
)

# -- plots ----------------------------------------------------------------------
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"svg.hashsalt": "aiobreakers"}

# -- HTML -----------------------------------------------------------------------
html_theme = "furo"
html_title = f"aiobreakers {release}"

# -- public names ---------------------------------------------------------------

_PUBLIC_MODULES = ("aiobreakers", "aiobreakers.testing")


def _public_names() -> dict[str, str]:
    """Map each public name to the module that exports it."""
    names: dict[str, str] = {}
    for module_name in _PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            names.setdefault(name, module_name)
    return names


def _resolve_private_path(
    app: Sphinx, env: BuildEnvironment, node: Element, contnode: Element
) -> reference | None:
    """
    Resolve ``aiobreakers._breaker.BreakerConfig`` to ``aiobreakers.BreakerConfig``.

    Type hints name objects by the private module that defines them; the
    reference documents them under the public module that exports them.
    """
    target = str(node.get("reftarget", ""))
    if node.get("refdomain") != "py" or not target.startswith("aiobreakers."):
        return None
    _, _, tail = target.partition(".")
    parts = tail.split(".")
    public = _public_names()
    for index, part in enumerate(parts):
        if part in public:
            new_target = ".".join([public[part], *parts[index:]])
            break
    else:
        return None
    if new_target == target:
        return None
    domain: Any = env.domains["py"]
    resolved: reference | None = domain.resolve_xref(
        env,
        node.get("refdoc", ""),
        app.builder,
        node.get("reftype", "class"),
        new_target,
        node,
        contnode,
    )
    return resolved


def _no_class_docstring_for_instances(*event: Any) -> None:
    """
    Keep ``autodata`` of an instance (``aiobreakers.registry``) to its own text.

    autodoc would repeat the docstring of the instance's class, which has its
    own entry. *event* is ``autodoc-process-docstring``'s arguments.
    """
    _app, what, _name, obj, _options, lines = event
    inherited = not isinstance(obj, type) and obj.__doc__ == type(obj).__doc__
    if what == "data" and inherited:
        lines.clear()


def setup(app: Sphinx) -> None:
    """Connect the private-path resolver and the docstring filter to the build."""
    app.connect("missing-reference", _resolve_private_path)
    app.connect("autodoc-process-docstring", _no_class_docstring_for_instances)
