"""The API reference pages document every public name, explicitly."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import pytest

import aiobreakers

DOCS = Path(__file__).parent.parent / "docs"
PAGES = {
    "aiobreakers": DOCS / "api.rst",
    "aiobreakers.testing": DOCS / "api-testing.rst",
    "aiobreakers.prometheus": DOCS / "api-integrations.rst",
    "aiobreakers.opentelemetry": DOCS / "api-integrations.rst",
    "aiobreakers.redis": DOCS / "api-integrations.rst",
}

_MODULE = re.compile(r"^\.\. (?:py:)?(?:module|currentmodule):: (\S+)\s*$")
_DIRECTIVE = re.compile(
    r"^\.\. (?:auto(?:class|exception|function|data|attribute)):: (\S+)\s*$"
)


def documented(page: Path, module_name: str) -> set[str]:
    """
    Return the dotted names an API page documents with autodoc directives.

    Only those under ``.. module:: module_name`` (a page may document several
    modules, one after the other).
    """
    module = ""
    names: set[str] = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if match := _MODULE.match(line):
            module = match.group(1)
        elif (match := _DIRECTIVE.match(line)) and module == module_name:
            name = match.group(1)
            names.add(name if "." in name else f"{module}.{name}")
    return names


@pytest.mark.parametrize("module_name", sorted(PAGES))
def test_every_public_name_is_in_the_reference(module_name: str) -> None:
    module = importlib.import_module(module_name)
    expected = {f"{module_name}.{name}" for name in module.__all__}
    missing = expected - documented(PAGES[module_name], module_name)
    assert not missing, f"add to {PAGES[module_name].name}: {sorted(missing)}"


@pytest.mark.parametrize("module_name", sorted(PAGES))
def test_the_reference_documents_only_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    expected = {f"{module_name}.{name}" for name in module.__all__}
    extra = documented(PAGES[module_name], module_name) - expected
    assert not extra, f"not in {module_name}.__all__: {sorted(extra)}"


@pytest.mark.parametrize("page", sorted(set(PAGES.values())))
def test_each_reference_page_documents_its_own_modules(page: Path) -> None:
    text = page.read_text(encoding="utf-8").splitlines()
    modules = {match.group(1) for line in text if (match := _MODULE.match(line))}
    assert modules == {module for module, path in PAGES.items() if path == page}


def test_every_fixture_of_the_plugin_is_in_the_reference() -> None:
    plugin = importlib.import_module("aiobreakers.testing._pytest_plugin")
    # How pytest marks a fixture: the attribute changed name in pytest 8.4.
    fixtures = {
        name
        for name, value in vars(plugin).items()
        if hasattr(value, "_fixture_function_marker")
        or hasattr(value, "_pytestfixturefunction")
    }
    text = PAGES["aiobreakers.testing"].read_text(encoding="utf-8")
    described = set(re.findall(r"^\.\. describe:: (\w+)\s*$", text, re.MULTILINE))
    assert fixtures
    assert fixtures == described


README = Path(__file__).parent.parent / "README.md"


def _plugin_fixtures() -> set[str]:
    """Return the names of the fixtures the pytest plugin defines."""
    from aiobreakers.testing import _pytest_plugin  # noqa: PLC0415

    return {
        name
        for name, value in vars(_pytest_plugin).items()
        if type(value).__name__ == "FixtureFunctionDefinition"
        or hasattr(value, "_pytestfixturefunction")
    }


def test_the_fixture_lists_name_every_fixture_of_the_plugin() -> None:
    """README.md and the testing guide list the plugin's fixtures, all of them."""
    fixtures = _plugin_fixtures()
    assert len(fixtures) >= 6
    readme = README.read_text(encoding="utf-8")
    guide = (DOCS / "testing.rst").read_text(encoding="utf-8")
    assert {name for name in fixtures if f"`{name}`" not in readme} == set()
    overview = guide[guide.index("* - pytest fixtures") :].split("\n     - ")[0]
    assert {name for name in fixtures if f"``{name}``" not in overview} == set()
    assert {name for name in fixtures if f"* - ``{name}``" not in guide} == set()


@pytest.mark.parametrize(
    ("config_name", "page"),
    [("BreakerConfig", "breaker.rst"), ("RetryConfig", "retry.rst")],
)
def test_every_config_field_is_in_its_tables(config_name: str, page: str) -> None:
    """Each config field has a row in its guide's table and in the README's."""
    fields = [
        field.name for field in dataclasses.fields(getattr(aiobreakers, config_name))
    ]
    guide = (DOCS / page).read_text(encoding="utf-8")
    readme = README.read_text(encoding="utf-8")
    assert [name for name in fields if f"* - ``{name}``" not in guide] == []
    assert [name for name in fields if f"| `{name}` |" not in readme] == []
