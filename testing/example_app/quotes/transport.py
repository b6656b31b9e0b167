"""
The HTTP-like layer between the quote client and the exchange.

The client never opens a socket itself: it hands a :class:`Request` to a
:class:`Transport` and reads the :class:`Response`, like httpx's transports.
Production code passes a transport backed by a real HTTP library; tests pass a
:class:`MockTransport` whose handler plays the exchange, so no network, no
patching and no mocks are needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["MockTransport", "Request", "Response", "Transport"]


@dataclass(frozen=True)
class Request:
    """One request to the exchange."""

    method: str
    path: str


@dataclass(frozen=True)
class Response:
    """The exchange's answer: an HTTP status and a JSON-like body."""

    status: int
    body: dict[str, object] = field(default_factory=dict)


class Transport(Protocol):
    """Sends requests to the exchange, blocking or in a coroutine."""

    def handle(self, request: Request) -> Response:
        """
        Send *request* and return the response, blocking the thread.

        Raises:
            ConnectionError: The exchange could not be reached.
            TimeoutError: The exchange did not answer in time.
        """
        ...

    async def handle_async(self, request: Request) -> Response:
        """Send *request* and return the response, in a coroutine."""
        ...


class MockTransport:
    """
    A transport whose every response comes from a function (for tests).

    Args:
        handler: Called with each request; returns the response, or raises
            what a real transport would raise (:class:`ConnectionError`,
            :class:`TimeoutError`).
    """

    def __init__(self, handler: Callable[[Request], Response]) -> None:
        self._handler = handler

    def handle(self, request: Request) -> Response:
        """Answer *request* with the handler."""
        return self._handler(request)

    async def handle_async(self, request: Request) -> Response:
        """Answer *request* with the handler."""
        return self._handler(request)
