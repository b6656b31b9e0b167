"""
Async-first circuit breakers and retry policies, fully typed, stdlib-only.

The whole public API is importable from this package; its submodules are
private, except for the testing toolkit, :mod:`aiobreakers.testing`, and the
integrations with optional dependencies, :mod:`aiobreakers.prometheus`,
:mod:`aiobreakers.opentelemetry` and :mod:`aiobreakers.redis`. This package
imports none of them.
"""

from ._attempts import Attempt as Attempt
from ._attempts import Attempts as Attempts
from ._backoff import BackoffStrategy as BackoffStrategy
from ._breaker import BreakerMetrics as BreakerMetrics
from ._breaker import CircuitBreaker as CircuitBreaker
from ._breaker import NoFallback as NoFallback
from ._budget import BudgetMetrics as BudgetMetrics
from ._budget import RetryBudget as RetryBudget
from ._config import BreakerConfig as BreakerConfig
from ._config import ConsecutiveFailures as ConsecutiveFailures
from ._config import RateWindow as RateWindow
from ._config import TripPolicy as TripPolicy
from ._errors import CircuitOpenError as CircuitOpenError
from ._errors import UnwantedResult as UnwantedResult
from ._events import CallFailed as CallFailed
from ._events import CallRejected as CallRejected
from ._events import CallSucceeded as CallSucceeded
from ._events import Event as Event
from ._events import HookFailed as HookFailed
from ._events import RetryExhausted as RetryExhausted
from ._events import RetryScheduled as RetryScheduled
from ._events import StateChanged as StateChanged
from ._events import StoreDegraded as StoreDegraded
from ._events import StoreRecovered as StoreRecovered
from ._http import parse_retry_after as parse_retry_after
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
from ._registry import Registry as Registry
from ._registry import RegistrySnapshot as RegistrySnapshot
from ._registry import registry as registry
from ._retry import RetryConfig as RetryConfig
from ._retry import RetryMetrics as RetryMetrics
from ._retry import RetryPolicy as RetryPolicy
from ._store import Store as Store

__all__ = [
    "Attempt",
    "Attempts",
    "BackoffStrategy",
    "BreakerConfig",
    "BreakerMetrics",
    "BudgetMetrics",
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
    "NoFallback",
    "RandomSource",
    "RateWindow",
    "Registry",
    "RegistrySnapshot",
    "RetryBudget",
    "RetryConfig",
    "RetryExhausted",
    "RetryMetrics",
    "RetryPolicy",
    "RetryScheduled",
    "Sleeper",
    "StateChanged",
    "Store",
    "StoreDegraded",
    "StoreRecovered",
    "SystemClock",
    "SystemRandom",
    "SystemSleeper",
    "TripPolicy",
    "UnwantedResult",
    "get_defaults",
    "parse_retry_after",
    "registry",
    "set_defaults",
]

_publish(__name__, globals())
