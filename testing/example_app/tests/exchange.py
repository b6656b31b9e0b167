"""The exchange's side of the tests: a handler for :class:`~quotes.MockTransport`."""

from __future__ import annotations

from quotes import Request, Response

__all__ = ["ScriptedExchange"]


class ScriptedExchange:
    """
    Plays the exchange behind a :class:`~quotes.MockTransport`.

    It answers from its price list, except that scripted outcomes come first,
    one per request, and that while it is ``down`` every request fails to
    connect. Every request is recorded, so tests can count what reached it.
    """

    def __init__(self, prices: dict[str, float]) -> None:
        self.prices = prices
        self.down = False
        self.requests: list[Request] = []
        self._script: list[type[Exception] | int] = []

    def script(self, *outcomes: type[Exception] | int) -> None:
        """Answer the next requests with these: an error to raise, or a status."""
        self._script.extend(outcomes)

    def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        if self._script:
            outcome = self._script.pop(0)
        elif self.down:
            outcome = ConnectionError
        else:
            return self._answer(request)
        if isinstance(outcome, int):
            return Response(outcome, {"error": "scripted"})
        # A fresh exception per request, as a real transport would raise.
        raise outcome(f"scripted {outcome.__name__}")

    def _answer(self, request: Request) -> Response:
        symbol = request.path.rsplit("/", 1)[-1]
        if symbol not in self.prices:
            return Response(404, {"error": f"no such symbol: {symbol}"})
        return Response(200, {"symbol": symbol, "price": self.prices[symbol]})
