"""Adapters: how each library builds a breaker or a retry policy for the cases.

Every library is configured the same way: a breaker opens after
``FAILURE_THRESHOLD`` consecutive failures and stays open for an hour; a retry
policy makes at most ``MAX_RETRIES`` retries (``MAX_RETRIES + 1`` attempts) on any
``Exception``, with every delay zero and no logging or instrumentation hooks
(nobody listens, as for aiobreakers).

Some cases add one thing a user may add to a breaker: a hook called when it
opens, an injected clock, or a sink hearing every event. A library gets such a
case only if it offers the same thing (its own listener API, an injected
clock); otherwise the adapter is ``None`` and the case reports ``n/a``.

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
Decorator = Callable[[Fn], Fn]
# Protect ``fn`` with a new breaker named ``name``: ``adapter(module, name, fn)``.
Protect = Callable[[Any, str, Fn], Fn]


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
            if self.name == SUBJECT:
                # Being written alongside: say what is missing.
                raise Skip(f"not available ({type(exc).__name__}: {exc})") from exc
            raise Skip("not installed") from exc
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
    protected dependency); ``decorator(module, name)`` returns what a user
    writes as ``@...`` to protect functions with the breaker named ``name``.
    ``sync(module, name, fn)`` and ``async_(module, name, fn)`` return ``fn``
    protected by a new breaker named ``name``, or are ``None`` when the library
    cannot protect that kind of function. ``on_open``, ``clocked`` and
    ``sunk`` do the same for a sync ``fn`` with a breaker that has, in turn,
    a callback for when it opens, an injected clock, or a listener for every
    event; ``None`` when the library has no such thing.
    """

    make: Callable[[Any, str], Any]
    decorator: Callable[[Any, str], Decorator]
    sync: Protect | None
    async_: Protect | None
    on_open: Protect | None = None
    clocked: Protect | None = None
    sunk: Protect | None = None


@dataclass(frozen=True, kw_only=True)
class RetryLib(Library):
    """A retry library: ``policy(module)`` returns a new retry decorator.

    The same decorator must handle sync and async functions.
    """

    policy: Callable[[Any], Decorator]

    def wrap(self, module: Any, fn: Fn) -> Fn:
        """Return ``fn`` with retries, by a policy of its own."""
        return self.policy(module)(fn)


def _decorate_with(make: Callable[[Any, str], Any]) -> Protect:
    """Protect a function the common way: ``@make(module, name)``."""

    def decorate(module: Any, name: str, fn: Fn) -> Fn:
        decorated: Fn = make(module, name)(fn)
        return decorated

    return decorate


class _NullSink:
    """An aiobreakers event sink that ignores every event."""

    __slots__ = ()

    def emit(self, event: object) -> None:
        """Ignore ``event``."""


def _aiobreakers_breaker(module: Any, name: str, **ports: Any) -> Any:
    config = module.BreakerConfig(
        failure_threshold=FAILURE_THRESHOLD, recovery_timeout=float(RECOVERY_SECONDS)
    )
    return module.CircuitBreaker(name, config, **ports)


def _aiobreakers_on_open(module: Any, name: str) -> Any:
    breaker = _aiobreakers_breaker(module, name)
    breaker.on_open(lambda _breaker: None)
    return breaker


def _aiobreakers_clocked(module: Any, name: str) -> Any:
    return _aiobreakers_breaker(module, name, clock=module.SystemClock())


def _aiobreakers_sunk(module: Any, name: str) -> Any:
    return _aiobreakers_breaker(module, name, sink=_NullSink())


# pybreaker and aiobreaker call every listener's before_call() and success()
# (or failure()) on each call, whichever methods the listener overrides: a
# listener interested only in state changes costs what one hearing everything
# costs.
STATE_CHANGES = ("state_change",)
EVERY_EVENT = ("before_call", "success", "failure", "state_change")


def _ignore(*_args: object, **_kwargs: object) -> None:
    """Do nothing: the body of every listener callback."""


@functools.cache
def _listener_class(module: Any, callbacks: tuple[str, ...]) -> type[Any]:
    """Return a ``CircuitBreakerListener`` that overrides ``callbacks`` to no-ops."""
    overrides = dict.fromkeys(callbacks, _ignore)
    return type("BenchListener", (module.CircuitBreakerListener,), overrides)


def _listening(
    make: Callable[..., Any], callbacks: tuple[str, ...]
) -> Callable[[Any, str], Any]:
    """Build breakers with ``make`` and one listener overriding ``callbacks``."""

    def make_listening(module: Any, name: str) -> Any:
        return make(module, name, listeners=[_listener_class(module, callbacks)()])

    return make_listening


def _pybreaker_breaker(module: Any, name: str, **options: Any) -> Any:
    return module.CircuitBreaker(
        fail_max=FAILURE_THRESHOLD,
        reset_timeout=RECOVERY_SECONDS,
        name=name,
        **options,
    )


def _circuitbreaker_breaker(module: Any, name: str) -> Any:
    return module.CircuitBreaker(
        failure_threshold=FAILURE_THRESHOLD,
        recovery_timeout=RECOVERY_SECONDS,
        name=name,
    )


def _aiobreaker_breaker(module: Any, name: str, **options: Any) -> Any:
    return module.CircuitBreaker(
        fail_max=FAILURE_THRESHOLD,
        timeout_duration=dt.timedelta(seconds=RECOVERY_SECONDS),
        name=name,
        **options,
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


def _purgatory_hook(_name: str, _event_name: str, _event: object) -> None:
    """A purgatory listener that ignores every event it is told about."""


# purgatory's listeners belong to a factory and hear about all of its
# breakers: the hooked case has a factory of its own, so that the listener
# never reaches the breakers of the other cases.
@functools.cache
def _purgatory_listening_factory(module: Any) -> Any:
    factory = module.SyncCircuitBreakerFactory(
        default_threshold=FAILURE_THRESHOLD, default_ttl=RECOVERY_SECONDS
    )
    factory.add_listener(_purgatory_hook)
    return factory


def _purgatory_breaker(module: Any, name: str) -> Any:
    # get_breaker() registers the breaker's state (a Context) and wraps it in a
    # handle that purgatory's own decorator throws away after each call: the
    # Context is what a purgatory breaker costs.
    return _purgatory_factory(module, asynchronous=False).get_breaker(name).context


def _purgatory_decorator(module: Any, name: str) -> Decorator:
    decorator: Decorator = _purgatory_factory(module, asynchronous=False)(name)
    return decorator


def _purgatory_decorate(*, asynchronous: bool) -> Protect:
    def decorate(module: Any, name: str, fn: Fn) -> Fn:
        decorated: Fn = _purgatory_factory(module, asynchronous=asynchronous)(name)(fn)
        return decorated

    return decorate


def _purgatory_on_open(module: Any, name: str, fn: Fn) -> Fn:
    decorated: Fn = _purgatory_listening_factory(module)(name)(fn)
    return decorated


BREAKERS: tuple[BreakerLib, ...] = (
    BreakerLib(
        name=SUBJECT,
        make=_aiobreakers_breaker,
        decorator=_aiobreakers_breaker,
        sync=_decorate_with(_aiobreakers_breaker),
        async_=_decorate_with(_aiobreakers_breaker),
        on_open=_decorate_with(_aiobreakers_on_open),
        clocked=_decorate_with(_aiobreakers_clocked),
        sunk=_decorate_with(_aiobreakers_sunk),
    ),
    # None of the peers takes a clock: each reads the time from the datetime or
    # time module directly.
    BreakerLib(
        name="pybreaker",
        make=_pybreaker_breaker,
        decorator=_pybreaker_breaker,
        sync=_decorate_with(_pybreaker_breaker),
        # pybreaker's only async support is for Tornado coroutines.
        async_=None,
        on_open=_decorate_with(_listening(_pybreaker_breaker, STATE_CHANGES)),
        sunk=_decorate_with(_listening(_pybreaker_breaker, EVERY_EVENT)),
    ),
    # circuitbreaker has no hooks or listeners at all.
    BreakerLib(
        name="circuitbreaker",
        make=_circuitbreaker_breaker,
        decorator=_circuitbreaker_breaker,
        sync=_decorate_with(_circuitbreaker_breaker),
        async_=_decorate_with(_circuitbreaker_breaker),
    ),
    BreakerLib(
        name="aiobreaker",
        make=_aiobreaker_breaker,
        decorator=_aiobreaker_breaker,
        sync=_decorate_with(_aiobreaker_breaker),
        async_=_decorate_with(_aiobreaker_breaker),
        on_open=_decorate_with(_listening(_aiobreaker_breaker, STATE_CHANGES)),
        sunk=_decorate_with(_listening(_aiobreaker_breaker, EVERY_EVENT)),
    ),
    # purgatory's listeners hear of state changes, failures and recoveries,
    # never of a success: nothing can listen to every call.
    BreakerLib(
        name="purgatory",
        make=_purgatory_breaker,
        decorator=_purgatory_decorator,
        sync=_purgatory_decorate(asynchronous=False),
        async_=_purgatory_decorate(asynchronous=True),
        on_open=_purgatory_on_open,
    ),
)


def _aiobreakers_retry(module: Any) -> Decorator:
    config = module.RetryConfig(
        max_retries=MAX_RETRIES,
        base_delay=0.0,
        max_delay=0.0,
        strategy=module.BackoffStrategy.EXPONENTIAL,
    )
    policy: Decorator = module.RetryPolicy("bench", config)
    return policy


def _tenacity_retry(module: Any) -> Decorator:
    # Each decoration builds a Retrying object of its own from these settings.
    decorator: Decorator = module.retry(
        stop=module.stop_after_attempt(MAX_RETRIES + 1),
        wait=module.wait_none(),
        reraise=True,
    )
    return decorator


def _stamina_retry(module: Any) -> Decorator:
    decorator: Decorator = module.retry(
        on=Exception,
        attempts=MAX_RETRIES + 1,
        timeout=None,
        wait_initial=0,
        wait_max=0,
        wait_jitter=0,
    )
    return decorator


def _stamina_setup(module: Any) -> None:
    # stamina logs every retry at WARNING by default; nobody listens here.
    module.instrumentation.set_on_retry_hooks([])


def _backoff_retry(module: Any) -> Decorator:
    decorator: Decorator = module.on_exception(
        module.constant,
        Exception,
        max_tries=MAX_RETRIES + 1,
        interval=0,
        jitter=None,
        logger=None,
    )
    return decorator


RETRIES: tuple[RetryLib, ...] = (
    RetryLib(name=SUBJECT, policy=_aiobreakers_retry),
    RetryLib(name="tenacity", policy=_tenacity_retry),
    RetryLib(name="stamina", policy=_stamina_retry, setup=_stamina_setup),
    RetryLib(name="backoff", policy=_backoff_retry),
)

PEERS: tuple[str, ...] = tuple(
    lib.name for lib in BREAKERS + RETRIES if lib.name != SUBJECT
)
