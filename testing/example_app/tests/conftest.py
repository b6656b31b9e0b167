"""
Fixtures for the quote service's tests: a scripted exchange, a fresh breaker.

The fakes themselves (``fake_clock``, ``fake_random``, ``breaker_spy``,
``retry_spy``) come from the aiobreakers pytest plugin, which pytest loads
automatically once aiobreakers is installed: nothing to import or register.
``pytest.ini`` applies ``fake_clock`` and ``fake_random`` to every test, so no
test can sleep for real or draw real jitter, even one that does not ask for
them; tests ask for them by name to script or inspect them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from quotes import MockTransport, QuoteClient, exchange_breaker

from .exchange import ScriptedExchange

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def closed_breaker() -> Iterator[None]:
    """
    Start and end every test with the shared breaker closed and its counters zero.

    ``exchange_breaker`` is built at import time and lives as long as the
    process, so without this an outage in one test would still be open in the
    next. (The spies need no such care: the plugin gives each test new ones.)
    """
    exchange_breaker.reset()
    yield
    exchange_breaker.reset()


@pytest.fixture
def exchange() -> ScriptedExchange:
    """An exchange that is up and lists two symbols."""
    return ScriptedExchange({"ACME": 101.25, "INIT": 7.5})


@pytest.fixture
def client(exchange: ScriptedExchange) -> QuoteClient:
    """A client talking to *exchange*, with an empty cache."""
    return QuoteClient(MockTransport(exchange))
