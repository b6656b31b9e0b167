"""
Async-first circuit breakers and retry policies, fully typed, stdlib-only.

The whole public API is importable from this package; submodules are private.
The testing toolkit lives in :mod:`aiobreakers.testing`, which this package
never imports.
"""

from ._backoff import BackoffStrategy as BackoffStrategy
from ._breaker import BreakerMetrics as BreakerMetrics
from ._breaker import CircuitBreaker as CircuitBreaker
from ._config import BreakerConfig as BreakerConfig
from ._config import ConsecutiveFailures as ConsecutiveFailures
from ._config import RateWindow as RateWindow
from ._config import TripPolicy as TripPolicy
from ._errors import CircuitOpenError as CircuitOpenError
from ._events import CallFailed as CallFailed
from ._events import CallRejected as CallRejected
from ._events import CallSucceeded as CallSucceeded
from ._events import Event as Event
from ._events import HookFailed as HookFailed
from ._events import RetryExhausted as RetryExhausted
from ._events import RetryScheduled as RetryScheduled
from ._events import StateChanged as StateChanged
from ._logging import LoggingSink as LoggingSink
from ._machine import CircuitState as CircuitState
from ._ports import Clock as Clock
from ._ports import Defaults as Defaults
from ._ports import EventSink as EventSink
from ._ports import RandomSource as RandomSource
from ._ports import Sleeper as Sleeper
from ._ports import SystemClock as SystemClock
from ._ports import SystemRandom as SystemRandom
from ._ports import SystemSleeper as SystemSleeper
from ._ports import get_defaults as get_defaults
from ._ports import set_defaults as set_defaults
from ._public import publish as _publish
from ._retry import RetryConfig as RetryConfig
from ._retry import RetryMetrics as RetryMetrics
from ._retry import RetryPolicy as RetryPolicy

__all__ = [
    "BackoffStrategy",
    "BreakerConfig",
    "BreakerMetrics",
    "CallFailed",
    "CallRejected",
    "CallSucceeded",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "Clock",
    "ConsecutiveFailures",
    "Defaults",
    "Event",
    "EventSink",
    "HookFailed",
    "LoggingSink",
    "RandomSource",
    "RateWindow",
    "RetryConfig",
    "RetryExhausted",
    "RetryMetrics",
    "RetryPolicy",
    "RetryScheduled",
    "Sleeper",
    "StateChanged",
    "SystemClock",
    "SystemRandom",
    "SystemSleeper",
    "TripPolicy",
    "get_defaults",
    "set_defaults",
]

_publish(__name__, globals())
