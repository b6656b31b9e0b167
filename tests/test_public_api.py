"""The public namespaces are exactly what __all__ says."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys

import pytest

from aiobreakers import BreakerConfig, CircuitOpenError, CircuitState, RetryConfig

# Every public module: the package, the testing toolkit, the integrations.
PUBLIC_MODULES = [
    "aiobreakers",
    "aiobreakers.testing",
    "aiobreakers.prometheus",
    "aiobreakers.opentelemetry",
]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_names_exist_and_are_unique(module_name: str) -> None:
    """Every name in __all__ is importable, and listed once."""
    module = importlib.import_module(module_name)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), name


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_attribute_is_in_all(module_name: str) -> None:
    """No public name is left out of __all__ (private modules excepted)."""
    module = importlib.import_module(module_name)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", "") != ""
    }
    submodules = {
        name for name in public if type(getattr(module, name)).__name__ == "module"
    }
    assert public - submodules - {"annotations"} == set(module.__all__)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_names_have_docstrings(module_name: str) -> None:
    """Each exported class and function says what it does."""
    module = importlib.import_module(module_name)
    for name in module.__all__:
        value = getattr(module, name)
        if callable(value):
            assert (value.__doc__ or "").strip(), name


def test_importing_the_core_does_not_import_the_testing_toolkit() -> None:
    """import aiobreakers never pulls in aiobreakers.testing (nor pytest)."""
    code = (
        "import sys, aiobreakers; "
        "print('aiobreakers.testing' in sys.modules, 'pytest' in sys.modules)"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_importing_the_core_imports_no_integration() -> None:
    """import aiobreakers (and its toolkit) never imports an optional dependency."""
    code = (
        "import sys, aiobreakers, aiobreakers.testing; print(sorted(name for name in"
        " sys.modules if name.split('.')[0] in {'prometheus_client', 'opentelemetry'}"
        " or name in {'aiobreakers.prometheus', 'aiobreakers.opentelemetry'}))"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_objects_name_the_public_module(module_name: str) -> None:
    """Classes and functions say where users import them from."""
    module = importlib.import_module(module_name)
    for name in module.__all__:
        value = getattr(module, name)
        if isinstance(value, type) or callable(value):
            assert value.__module__ == module_name, name


def test_errors_and_configs_pickle_by_their_public_names() -> None:
    """Pickles name aiobreakers, never a private module."""
    for value in (
        CircuitOpenError("api", 1.5, "open"),
        CircuitState.OPEN,
        BreakerConfig(failure_threshold=2),
        RetryConfig(max_retries=1),
    ):
        data = pickle.dumps(value)
        assert b"aiobreakers._" not in data
        restored = pickle.loads(data)  # noqa: S301 - our own data
        assert type(restored) is type(value)
        assert repr(restored) == repr(value)
