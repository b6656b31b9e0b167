"""
OpenTelemetry metrics for every breaker and retry policy: observable instruments.

Needs ``opentelemetry-api`` (``pip install 'aiobreakers[opentelemetry]'``),
and an SDK or distribution to export; ``import aiobreakers`` never imports
this module. :func:`instrument` creates the instruments once; the meter
provider's readers call them at each collection, and they read
:data:`aiobreakers.registry` then: nothing is done per call::

    from aiobreakers.opentelemetry import instrument

    handle = instrument()  # the global meter provider
    ...
    handle.uninstrument()

See :doc:`/observability` for the instruments and their attributes.
"""

from __future__ import annotations

import threading
import weakref
from importlib import metadata
from typing import TYPE_CHECKING

try:
    import opentelemetry.metrics
except ImportError as _error:  # pragma: no cover - tested in a subprocess
    raise ImportError(
        "aiobreakers.opentelemetry needs opentelemetry-api:"
        " pip install 'aiobreakers[opentelemetry]'"
    ) from _error

from . import _fork, _totals

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import TracebackType
    from typing import Final

    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from typing_extensions import Self

__all__ = ["Instrumentation", "instrument"]

# The meter, or instrumentation scope, of the instruments (what a View names).
_METER_NAME: Final = "aiobreakers"

_Observe = opentelemetry.metrics.Observation


def _version() -> str:
    try:
        return metadata.version("aiobreakers")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        return ""


class _Instruments:
    """
    The six instruments on one meter provider, and who wants them reporting.

    OpenTelemetry cannot remove an instrument, and a second instrument of the
    same name on a meter is the first one again: so the instruments are made
    once per provider, and report while at least one handle is instrumented.
    """

    def __init__(self, provider: MeterProvider) -> None:
        self.handles = 0
        meter = opentelemetry.metrics.get_meter(
            _METER_NAME, _version(), meter_provider=provider
        )
        meter.create_observable_up_down_counter(
            "aiobreakers.breaker.state",
            callbacks=[self._guarded(_breaker_states)],
            unit="{breaker}",
            description="Circuit breakers in each state: 1 for the current state,"
            " 0 for the others (summed over breakers sharing a name).",
        )
        meter.create_observable_counter(
            "aiobreakers.breaker.calls",
            callbacks=[self._guarded(_breaker_calls)],
            unit="{call}",
            description="Calls through a circuit breaker, by outcome: success,"
            " failure, or rejected without running.",
        )
        meter.create_observable_counter(
            "aiobreakers.breaker.trips",
            callbacks=[self._guarded(_breaker_trips)],
            unit="{trip}",
            description="Times a circuit breaker opened.",
        )
        meter.create_observable_counter(
            "aiobreakers.retry.calls",
            callbacks=[self._guarded(_retry_calls)],
            unit="{call}",
            description="Calls protected by a retry policy, by outcome (once per"
            " call, however many attempts).",
        )
        meter.create_observable_counter(
            "aiobreakers.retry.retries",
            callbacks=[self._guarded(_retry_retries)],
            unit="{retry}",
            description="Retries a retry policy made.",
        )
        meter.create_observable_counter(
            "aiobreakers.retry.exhausted",
            callbacks=[self._guarded(_retry_exhausted)],
            unit="{call}",
            description="Calls that failed because their retries ran out.",
        )

    def _guarded(
        self, observe: Callable[[], Iterable[Observation]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            return observe() if self.handles else ()

        return callback


class _State:
    """The instruments made so far, by meter provider, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.instruments: weakref.WeakKeyDictionary[MeterProvider, _Instruments] = (
            weakref.WeakKeyDictionary()
        )
        with _fork.making.lock:
            _fork.register(self, _State._renew_after_fork)

    def _renew_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may be held for good)."""
        self.lock = threading.Lock()


_state: Final = _State()


class Instrumentation:
    """
    What :func:`instrument` returns: call :meth:`uninstrument` to stop.

    Also a context manager that uninstruments on exit.
    """

    __slots__ = ("_instruments",)

    def __init__(self, instruments: _Instruments) -> None:
        """Made by :func:`instrument` only."""
        self._instruments: _Instruments | None = instruments

    @property
    def instrumented(self) -> bool:
        """Whether this handle still has the instruments reporting."""
        return self._instruments is not None

    def uninstrument(self) -> None:
        """
        Stop reporting; calling it again does nothing.

        The instruments stay on the meter (OpenTelemetry cannot remove one)
        but report no measurements from the next collection on, unless
        another handle for the same meter provider is still instrumented.
        """
        with _state.lock:
            if self._instruments is not None:
                self._instruments.handles -= 1
                self._instruments = None

    def __enter__(self) -> Self:
        """Return the handle itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Uninstrument."""
        self.uninstrument()


def instrument(meter_provider: MeterProvider | None = None) -> Instrumentation:
    """
    Report every live breaker and retry policy through OpenTelemetry.

    Creates, on the meter ``"aiobreakers"``, observable instruments that
    read :data:`aiobreakers.registry` at each collection, so breakers and
    policies made later are reported too, and protected calls do no work for
    them. Breakers and policies sharing a name are added up (see
    :class:`~aiobreakers.Registry`).

    - ``aiobreakers.breaker.state`` (up-down counter, attributes ``breaker``,
      ``state``): 1 for the current state, 0 for the others.
    - ``aiobreakers.breaker.calls`` (counter; ``breaker``, ``outcome``:
      ``success``, ``failure`` or ``rejected``).
    - ``aiobreakers.breaker.trips`` (counter; ``breaker``).
    - ``aiobreakers.retry.calls`` (counter; ``policy``, ``outcome``:
      ``success`` or ``failure``).
    - ``aiobreakers.retry.retries`` and ``aiobreakers.retry.exhausted``
      (counters; ``policy``).

    Instrumenting a provider that is already instrumented returns another
    handle to the same instruments (nothing is reported twice); they report
    until every handle is uninstrumented.

    Args:
        meter_provider: The provider to report to; ``None`` for the global
            one (``opentelemetry.metrics.get_meter_provider()``, which may be
            set after this call: the API's proxy forwards to it).

    Returns:
        A handle whose :meth:`~Instrumentation.uninstrument` stops reporting.
    """
    provider = (
        opentelemetry.metrics.get_meter_provider()
        if meter_provider is None
        else meter_provider
    )
    with _state.lock:
        instruments = _state.instruments.get(provider)
        if instruments is None:
            instruments = _state.instruments[provider] = _Instruments(provider)
        instruments.handles += 1
    return Instrumentation(instruments)


def _breaker_states() -> list[Observation]:
    return [
        _Observe(count, {"breaker": row.name, "state": state})
        for row in _totals.breaker_totals()
        for state, count in row.states.items()
    ]


def _breaker_calls() -> list[Observation]:
    observations: list[Observation] = []
    for row in _totals.breaker_totals():
        observations += [
            _Observe(row.successes, {"breaker": row.name, "outcome": "success"}),
            _Observe(row.failures, {"breaker": row.name, "outcome": "failure"}),
            _Observe(row.rejected, {"breaker": row.name, "outcome": "rejected"}),
        ]
    return observations


def _breaker_trips() -> list[Observation]:
    return [
        _Observe(row.trips, {"breaker": row.name}) for row in _totals.breaker_totals()
    ]


def _retry_calls() -> list[Observation]:
    observations: list[Observation] = []
    for row in _totals.policy_totals():
        observations += [
            _Observe(row.successes, {"policy": row.name, "outcome": "success"}),
            _Observe(row.failures, {"policy": row.name, "outcome": "failure"}),
        ]
    return observations


def _retry_retries() -> list[Observation]:
    return [
        _Observe(row.retries, {"policy": row.name}) for row in _totals.policy_totals()
    ]


def _retry_exhausted() -> list[Observation]:
    return [
        _Observe(row.exhausted, {"policy": row.name}) for row in _totals.policy_totals()
    ]
