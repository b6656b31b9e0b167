"""A small quote service protected by aiobreakers: the example app."""

from .client import ExchangeUnavailableError as ExchangeUnavailableError
from .client import QuoteClient as QuoteClient
from .client import QuoteError as QuoteError
from .client import QuoteUnavailableError as QuoteUnavailableError
from .client import UnknownSymbolError as UnknownSymbolError
from .client import exchange_breaker as exchange_breaker
from .client import exchange_retry as exchange_retry
from .transport import MockTransport as MockTransport
from .transport import Request as Request
from .transport import Response as Response
from .transport import Transport as Transport

__all__ = [
    "ExchangeUnavailableError",
    "MockTransport",
    "QuoteClient",
    "QuoteError",
    "QuoteUnavailableError",
    "Request",
    "Response",
    "Transport",
    "UnknownSymbolError",
    "exchange_breaker",
    "exchange_retry",
]
