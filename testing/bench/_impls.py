"""Adapters: how each library builds a breaker or a retry policy for the cases.

Every library is configured the same way: a breaker opens after
``FAILURE_THRESHOLD`` consecutive failures and stays open for an hour; a retry
policy makes at most ``MAX_RETRIES`` retries (``MAX_RETRIES + 1`` attempts) on any
``Exception``, with every delay zero and no logging or instrumentation hooks
(nobody listens, as for aiobreakers).

Libraries are imported lazily with :mod:`importlib`, so a peer that is not
installed is reported and skipped instead of breaking the run.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FAILURE_THRESHOLD = 5
RECOVERY_SECONDS = 3600
MAX_RETRIES = 3

SUBJECT = "aiobreakers"

Fn = Callable[..., Any]


class Skip(Exception):  # noqa: N818 - a status, not an error condition
    """A library cannot take part in a case; ``str(skip)`` says why."""


@dataclass(frozen=True, kw_only=True)
class Library:
    """A library under test: its import name and a one-time setup."""

    name: str
    setup: Callable[[Any], None] = lambda _module: None

    def load(self) -> Any:
        """Import the library, or raise :class:`Skip` saying why not."""
        try:
            module = importlib.import_module(self.name)
        except ImportError as exc:
            status = "not available" if self.name == SUBJECT else "not installed"
            raise Skip(status) from exc
        self.setup(module)
        return module

    def version(self) -> str:
        """Return the installed distribution version, or a status."""
        try:
            return importlib.metadata.version(self.name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"


@dataclass(frozen=True, kw_only=True)
class BreakerLib(Library):
    """A circuit-breaker library.

    ``make(module, name)`` returns a new closed breaker (what a user keeps per
    protected dependency); ``sync(module, name, fn)`` and ``async_(module, name,
    fn)`` return ``fn`` protected by a new breaker named ``name``, or are
    ``None`` when the library cannot protect that kind of function.
    """

    make: Callable[[Any, str], Any]
    sync: Callable[[Any, str, Fn], Fn] | None
    async_: Callable[[Any, str, Fn], Fn] | None


@dataclass(frozen=True, kw_only=True)
class RetryLib(Library):
    """A retry library: ``wrap(module, fn)`` returns ``fn`` with retries.

    The same decorator must handle sync and async functions.
    """

    wrap: Callable[[Any, Fn], Fn]


def _decorate_with(make: Callable[[Any, str], Any]) -> Callable[[Any, str, Fn], Fn]:
    """Protect a function the common way: ``@make(module, name)``."""

    def decorate(module: Any, name: str, fn: Fn) -> Fn:
        decorated: Fn = make(module, name)(fn)
        return decorated

    return decorate


def _aiobreakers_breaker(module: Any, name: str) -> Any:
    config = module.BreakerConfig(
        failure_threshold=FAILURE_THRESHOLD, recovery_timeout=float(RECOVERY_SECONDS)
    )
    return module.CircuitBreaker(name, config)


def _pybreaker_breaker(module: Any, name: str) -> Any:
    return module.CircuitBreaker(
        fail_max=FAILURE_THRESHOLD, reset_timeout=RECOVERY_SECONDS, name=name
    )


def _circuitbreaker_breaker(module: Any, name: str) -> Any:
    return module.CircuitBreaker(
        failure_threshold=FAILURE_THRESHOLD,
        recovery_timeout=RECOVERY_SECONDS,
        name=name,
    )


def _aiobreaker_breaker(module: Any, name: str) -> Any:
    return module.CircuitBreaker(
        fail_max=FAILURE_THRESHOLD,
        timeout_duration=dt.timedelta(seconds=RECOVERY_SECONDS),
        name=name,
    )


# purgatory keeps every breaker in a factory (its registry) and looks the breaker
# up by name on each call; one factory per process is how it is meant to be used.
@functools.cache
def _purgatory_factory(module: Any, *, asynchronous: bool) -> Any:
    factory = (
        module.AsyncCircuitBreakerFactory
        if asynchronous
        else module.SyncCircuitBreakerFactory
    )
    return factory(default_threshold=FAILURE_THRESHOLD, default_ttl=RECOVERY_SECONDS)


def _purgatory_breaker(module: Any, name: str) -> Any:
    # get_breaker() registers the breaker's state (a Context) and wraps it in a
    # handle that purgatory's own decorator throws away after each call: the
    # Context is what a purgatory breaker costs.
    return _purgatory_factory(module, asynchronous=False).get_breaker(name).context


def _purgatory_decorate(*, asynchronous: bool) -> Callable[[Any, str, Fn], Fn]:
    def decorate(module: Any, name: str, fn: Fn) -> Fn:
        decorated: Fn = _purgatory_factory(module, asynchronous=asynchronous)(name)(fn)
        return decorated

    return decorate


BREAKERS: tuple[BreakerLib, ...] = (
    BreakerLib(
        name=SUBJECT,
        make=_aiobreakers_breaker,
        sync=_decorate_with(_aiobreakers_breaker),
        async_=_decorate_with(_aiobreakers_breaker),
    ),
    BreakerLib(
        name="pybreaker",
        make=_pybreaker_breaker,
        sync=_decorate_with(_pybreaker_breaker),
        # pybreaker's only async support is for Tornado coroutines.
        async_=None,
    ),
    BreakerLib(
        name="circuitbreaker",
        make=_circuitbreaker_breaker,
        sync=_decorate_with(_circuitbreaker_breaker),
        async_=_decorate_with(_circuitbreaker_breaker),
    ),
    BreakerLib(
        name="aiobreaker",
        make=_aiobreaker_breaker,
        sync=_decorate_with(_aiobreaker_breaker),
        async_=_decorate_with(_aiobreaker_breaker),
    ),
    BreakerLib(
        name="purgatory",
        make=_purgatory_breaker,
        sync=_purgatory_decorate(asynchronous=False),
        async_=_purgatory_decorate(asynchronous=True),
    ),
)


def _aiobreakers_retry(module: Any, fn: Fn) -> Fn:
    config = module.RetryConfig(
        max_retries=MAX_RETRIES,
        base_delay=0.0,
        max_delay=0.0,
        strategy=module.BackoffStrategy.EXPONENTIAL,
    )
    wrapped: Fn = module.RetryPolicy("bench", config)(fn)
    return wrapped


def _tenacity_retry(module: Any, fn: Fn) -> Fn:
    wrapped: Fn = module.retry(
        stop=module.stop_after_attempt(MAX_RETRIES + 1),
        wait=module.wait_none(),
        reraise=True,
    )(fn)
    return wrapped


def _stamina_retry(module: Any, fn: Fn) -> Fn:
    wrapped: Fn = module.retry(
        on=Exception,
        attempts=MAX_RETRIES + 1,
        timeout=None,
        wait_initial=0,
        wait_max=0,
        wait_jitter=0,
    )(fn)
    return wrapped


def _stamina_setup(module: Any) -> None:
    # stamina logs every retry at WARNING by default; nobody listens here.
    module.instrumentation.set_on_retry_hooks([])


def _backoff_retry(module: Any, fn: Fn) -> Fn:
    wrapped: Fn = module.on_exception(
        module.constant,
        Exception,
        max_tries=MAX_RETRIES + 1,
        interval=0,
        jitter=None,
        logger=None,
    )(fn)
    return wrapped


RETRIES: tuple[RetryLib, ...] = (
    RetryLib(name=SUBJECT, wrap=_aiobreakers_retry),
    RetryLib(name="tenacity", wrap=_tenacity_retry),
    RetryLib(name="stamina", wrap=_stamina_retry, setup=_stamina_setup),
    RetryLib(name="backoff", wrap=_backoff_retry),
)

PEERS: tuple[str, ...] = tuple(
    lib.name for lib in BREAKERS + RETRIES if lib.name != SUBJECT
)
