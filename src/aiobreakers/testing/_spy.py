"""Event sinks that record what breakers and retry policies did."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from aiobreakers import (
    CallFailed,
    CallRejected,
    CallSucceeded,
    CircuitState,
    Event,
    HookFailed,
    RetryExhausted,
    RetryScheduled,
    StateChanged,
)

from ._sinks import add_sink

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from typing_extensions import Self

__all__ = ["BreakerSpy", "RetrySpy", "Spy"]

_E = TypeVar("_E")


class Spy:
    """
    An :class:`~aiobreakers.EventSink` that records every event it receives.

    Install one for every breaker and policy with the ``breaker_spy`` or
    ``retry_spy`` fixture, or :func:`~aiobreakers.testing.fakes`, or pass it
    as ``sink=`` to one of them. Events are frozen records, so tests can
    compare whole lists.

    Attributes:
        events: Every event received, in order.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._uninstall: Callable[[], None] | None = None

    def emit(self, event: Event) -> None:
        """Record *event*."""
        self.events.append(event)

    def clear(self) -> None:
        """Forget every event recorded so far."""
        self.events.clear()

    def of(self, name: str) -> list[Event]:
        """Return the events of the breaker or policy called *name*."""
        return [event for event in self.events if event.name == name]

    def hook_failures(self, name: str | None = None) -> list[HookFailed]:
        """Return the :class:`~aiobreakers.HookFailed` events (of *name*)."""
        return self._select(HookFailed, name)

    def _select(self, kind: type[_E], name: str | None) -> list[_E]:
        return [
            event
            for event in self.events
            if isinstance(event, kind) and (name is None or event.name == name)
        ]

    def _fail(self, message: str, name: str) -> None:
        recorded = "\n".join(f"  {event!r}" for event in self.of(name)) or "  (none)"
        raise AssertionError(f"{message}\nevents of {name!r}:\n{recorded}")

    def __enter__(self) -> Self:
        """Receive every breaker's and policy's events until the block ends."""
        if self._uninstall is not None:
            raise RuntimeError(f"{self!r} is already installed")
        self._uninstall = add_sink(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop receiving events from breakers and policies without a sink."""
        if self._uninstall is not None:
            self._uninstall()
            self._uninstall = None


class BreakerSpy(Spy):
    """
    A :class:`Spy` with questions and assertions about circuit breakers.

    Example::

        def test_trips(breaker_spy):
            ...
            assert breaker_spy.transitions("api") == [("closed", "open")]
            breaker_spy.assert_calls("api", failures=5, rejected=1)
    """

    def transitions(self, name: str) -> list[tuple[CircuitState, CircuitState]]:
        """
        Return the state changes of breaker *name* as ``(old, new)`` pairs.

        States are :class:`~aiobreakers.CircuitState` members, which compare
        equal to strings: ``[("closed", "open")]`` matches.
        """
        return [(e.old, e.new) for e in self._select(StateChanged, name)]

    def calls(self, name: str) -> int:
        """Return how many calls of breaker *name* ran and finished."""
        return self.successes(name) + self.failures(name)

    def successes(self, name: str) -> int:
        """Return how many calls of breaker *name* counted as successes."""
        return len(self._select(CallSucceeded, name))

    def failures(self, name: str) -> int:
        """Return how many calls of breaker *name* counted as failures."""
        return len(self._select(CallFailed, name))

    def rejections(self, name: str) -> int:
        """Return how many calls breaker *name* rejected (fallback or not)."""
        return len(self._select(CallRejected, name))

    def fallbacks(self, name: str) -> int:
        """Return how many rejected calls breaker *name* served by fallback."""
        return sum(event.fallback for event in self._select(CallRejected, name))

    def assert_transitions(self, name: str, *expected: tuple[str, str]) -> None:
        """
        Assert that breaker *name* changed state exactly as *expected*.

        Example: ``spy.assert_transitions("api", ("closed", "open"))``.
        """
        actual = self.transitions(name)
        if actual != list(expected):
            self._fail(
                f"breaker {name!r} went through {_pairs(actual)},"
                f" expected {_pairs(expected)}",
                name,
            )

    def assert_calls(
        self,
        name: str,
        *,
        successes: int | None = None,
        failures: int | None = None,
        rejected: int | None = None,
    ) -> None:
        """Assert the counts of breaker *name* that are given; others are free."""
        actual = {
            "successes": self.successes(name),
            "failures": self.failures(name),
            "rejected": self.rejections(name),
        }
        wanted = {"successes": successes, "failures": failures, "rejected": rejected}
        wrong = [
            f"{key}={actual[key]} (expected {value})"
            for key, value in wanted.items()
            if value is not None and actual[key] != value
        ]
        if wrong:
            self._fail(f"breaker {name!r} had " + ", ".join(wrong), name)

    def assert_tripped(self, name: str, times: int = 1) -> None:
        """Assert that breaker *name* opened exactly *times* times."""
        opened = sum(new == "open" for _, new in self.transitions(name))
        if opened != times:
            self._fail(
                f"breaker {name!r} opened {opened} time(s), expected {times}", name
            )


class RetrySpy(Spy):
    """
    A :class:`Spy` with questions and assertions about retry policies.

    Example::

        def test_backs_off(retry_spy):
            ...
            retry_spy.assert_delays("api", [1.0, 2.0, 4.0])
    """

    def retries(self, name: str) -> list[RetryScheduled]:
        """Return the :class:`~aiobreakers.RetryScheduled` events of *name*."""
        return self._select(RetryScheduled, name)

    def attempts(self, name: str) -> list[int]:
        """Return the number of each retry policy *name* scheduled, in order."""
        return [event.attempt for event in self.retries(name)]

    def delays(self, name: str) -> list[float]:
        """Return each delay policy *name* waited before a retry, in order."""
        return [event.delay for event in self.retries(name)]

    def exhausted(self, name: str) -> list[RetryExhausted]:
        """Return the :class:`~aiobreakers.RetryExhausted` events of *name*."""
        return self._select(RetryExhausted, name)

    def assert_delays(self, name: str, expected: Iterable[float]) -> None:
        """Assert that policy *name* waited exactly *expected* before retries."""
        self._expect(name, "waited", self.delays(name), list(expected))

    def assert_attempts(self, name: str, expected: Iterable[int]) -> None:
        """Assert the numbers of the retries policy *name* scheduled."""
        self._expect(name, "scheduled retries", self.attempts(name), list(expected))

    def assert_exhausted(self, name: str, times: int = 1) -> None:
        """Assert that policy *name* ran out of retries exactly *times* times."""
        self._expect(name, "gave up", len(self.exhausted(name)), times, unit=" time(s)")

    def _expect(
        self, name: str, verb: str, actual: object, expected: object, unit: str = ""
    ) -> None:
        if actual != expected:
            self._fail(
                f"retry policy {name!r} {verb} {actual!r}{unit}, expected {expected!r}",
                name,
            )


def _pairs(pairs: Iterable[tuple[str, str]]) -> str:
    shown = ", ".join(f"{old} -> {new}" for old, new in pairs)
    return f"[{shown}]"
