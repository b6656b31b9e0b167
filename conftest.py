"""
Run every Python example in README.md and docs/ as a test, with Sybil.

``python -m pytest`` collects them (``testpaths`` lists ``docs`` and
``README.md``). Each document is one namespace: its examples run in order and
see what earlier ones defined.

- Top-level ``await``, ``async with`` and ``async for`` work as written: a block
  that uses them is compiled with ``PyCF_ALLOW_TOP_LEVEL_AWAIT`` and run to
  completion with :func:`asyncio.run`.
- A block that defines ``test_*`` functions runs them too, with the plugin's
  fixtures as :func:`aiobreakers.testing.fakes` provides them, so that test
  examples are proven to pass, not just to compile.
- ``>>>`` examples in reStructuredText are doctests (``ELLIPSIS`` on).
- ``.. invisible-code-block: python`` (or ``<!-- invisible-code-block:
  python -->`` in Markdown) runs setup code the reader does not need to see;
  ``.. skip: next`` marks a block that is not aiobreakers code (another
  library's, in the comparison page).
- While a document runs, the process-wide default clock and sleeper are a
  :class:`~aiobreakers.testing.FakeClock` and jitter is seeded, so examples
  with real-looking delays (``base_delay=1.0``) take no real time.
- The dependencies the examples talk to (``payment_api``, ``httpx``,
  ``requests``, ``db``, ...) are the small stand-ins below.

It also gives every async test in ``tests/`` and ``docs/examples/`` (the
modules mark theirs ``pytest.mark.anyio``) the two backends it runs on.
"""

from __future__ import annotations

import ast
import asyncio
import doctest
import inspect
from typing import TYPE_CHECKING, Any

import pytest
from sybil import Sybil
from sybil.evaluators.python import pad
from sybil.parsers.markdown import CodeBlockParser as MarkdownCodeBlockParser
from sybil.parsers.markdown import SkipParser as MarkdownSkipParser
from sybil.parsers.rest import CodeBlockParser, DocTestParser, SkipParser

from aiobreakers import SystemRandom, set_defaults
from aiobreakers.testing import FakeClock, fakes

if TYPE_CHECKING:
    from sybil import Example
    from typing_extensions import Self

# -- the backends of every async test ------------------------------------------


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """
    Run each ``pytest.mark.anyio`` test once under asyncio and once under trio.

    anyio's pytest plugin runs the tests; a test that only makes sense under
    one library parametrizes ``anyio_backend`` itself, which overrides this.
    """
    backend: str = request.param
    return backend


# -- stand-ins for the dependencies the examples protect ---------------------------


class AuthenticationError(Exception):
    """A stand-in for an HTTP client's "401: bad credentials" error."""


class PaymentAPI:
    """An async HTTP client for a payment service; ``down`` makes it fail."""

    def __init__(self) -> None:
        """Start up."""
        self.down = False

    async def get(self, path: str) -> dict[str, Any]:
        """Answer ``{"path": path}``, or raise :class:`ConnectionError`."""
        if self.down:
            raise ConnectionError(f"payment API unreachable: GET {path}")
        return {"path": path}

    async def post(self, path: str, json: dict[str, Any]) -> dict[str, Any]:
        """Answer like :meth:`get`, echoing the body."""
        return {**await self.get(path), "json": json}


class Response:
    """A minimal ``httpx.Response``: always a 200."""

    def __init__(self, url: str) -> None:
        """Answer *url*."""
        self.url = url
        self.status_code = 200

    def raise_for_status(self) -> Response:
        """Raise for a 4xx or 5xx status (never: this one is a 200)."""
        return self

    def json(self) -> dict[str, str]:
        """Return the decoded body."""
        return {"url": self.url}


class AsyncClient:
    """Stands in for ``httpx.AsyncClient``: ``get`` answers at once."""

    async def __aenter__(self) -> Self:
        """Open the client."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the client."""

    async def get(self, url: str) -> Response:
        """Return a response for *url*."""
        return Response(url)


class HTTPError(Exception):
    """Stands in for ``httpx.HTTPError``: the base of httpx's errors."""


class TransportError(HTTPError):
    """Stands in for ``httpx.TransportError``: connection errors, timeouts."""


class ReadTimeout(TransportError):  # noqa: N818 - httpx's own name
    """Stands in for ``httpx.ReadTimeout``, one of its transport errors."""


class HTTPStatusError(HTTPError):
    """Stands in for ``httpx.HTTPStatusError``: what ``raise_for_status`` raises."""


class HTTPX:
    """Stands in for the ``httpx`` module: ``AsyncClient`` and its errors."""

    AsyncClient = AsyncClient
    HTTPError = HTTPError
    TransportError = TransportError
    ReadTimeout = ReadTimeout
    HTTPStatusError = HTTPStatusError


class Requests:
    """Stands in for ``requests``: ``get`` answers at once."""

    def get(self, path: str) -> str:
        """Return a fake body."""
        return f"GET {path}"


class DB:
    """A database connection."""

    def query(self, sql: str) -> list[tuple[int]]:
        """Run *sql* (answers one row)."""
        return [(len(sql),)]


class Exchange:
    """A stock exchange client."""

    async def quote(self, symbol: str) -> float:
        """Return the price of *symbol*."""
        return 42.0 if symbol else 0.0


class Metrics:
    """Counts what the examples record."""

    def __init__(self) -> None:
        """Start counting from zero."""
        self.counts: dict[str, int] = {}

    def record(self, what: str) -> None:
        """Count one *what*."""
        self.counts[what] = self.counts.get(what, 0) + 1


def standins() -> dict[str, Any]:
    """Return the names the examples use without defining them."""
    messages: list[str] = []
    return {
        "AuthenticationError": AuthenticationError,
        "payment_api": PaymentAPI(),
        "api": PaymentAPI(),
        "httpx": HTTPX(),
        "requests": Requests(),
        "db": DB(),
        "exchange": Exchange(),
        "cache": {"ACME": 41.5},
        "metrics": Metrics(),
        "messages": messages,
        "alert": messages.append,
        "log": messages.append,
    }


# -- running examples ------------------------------------------------------------


def evaluate(example: Example) -> None:
    """Run one Python block, awaiting it if it awaits at top level."""
    __tracebackhide__ = True
    namespace = example.namespace
    source = pad(example.parsed, example.line + example.parsed.line_offset)
    code = compile(
        source,
        example.path,
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        dont_inherit=True,
    )
    before = dict(namespace)
    # exec would drop the coroutine that a top-level await makes; eval returns it.
    result = eval(code, namespace)  # noqa: S307 - our own documentation's code
    if inspect.iscoroutine(result):
        asyncio.run(result)
    for name, value in list(namespace.items()):
        if name.startswith("test_") and before.get(name) is not value:
            run_test(value)
    namespace.pop("__builtins__", None)


def run_test(test: Any) -> None:
    """
    Run a test function an example defined, with the plugin's fixtures.

    The fixtures come from :func:`aiobreakers.testing.fakes`, which installs
    exactly what the plugin's fixtures do; asking for any other is an error.
    """
    if not callable(test):
        return
    parameters = inspect.signature(test).parameters
    with fakes() as fake:
        fixtures = {
            "fake_clock": fake.clock,
            "fake_random": fake.random,
            "breaker_spy": fake.breakers,
            "retry_spy": fake.retries,
            "aiobreakers_fakes": fake,
        }
        unknown = sorted(set(parameters) - set(fixtures))
        if unknown:
            raise TypeError(f"{test.__name__} asks for unknown fixtures {unknown}")
        outcome = test(**{name: fixtures[name] for name in parameters})
        if inspect.iscoroutine(outcome):
            asyncio.run(outcome)


def setup(namespace: dict[str, Any]) -> None:
    """Give a document its stand-ins and virtual time."""
    clock = FakeClock()
    namespace.update(standins())
    namespace["_previous_defaults"] = set_defaults(
        clock=clock, sleeper=clock, random=SystemRandom(seed=0)
    )


def teardown(namespace: dict[str, Any]) -> None:
    """Restore the process-wide defaults a document replaced."""
    namespace["_previous_defaults"].install()


_docs = Sybil(
    parsers=[
        CodeBlockParser(language="python", evaluator=evaluate),
        DocTestParser(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE),
        SkipParser(),
    ],
    patterns=["docs/*.rst"],
    setup=setup,
    teardown=teardown,
)
_readme = Sybil(
    parsers=[
        MarkdownCodeBlockParser(language="python", evaluator=evaluate),
        MarkdownSkipParser(),
    ],
    filenames=["README.md"],
    excludes=["testing/*", "testing/*/*", "testing/*/*/*"],
    setup=setup,
    teardown=teardown,
)
pytest_collect_file = (_docs + _readme).pytest()
