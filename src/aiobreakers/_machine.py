"""
The circuit's state machine: pure decisions, no locks, clocks or hooks.

:class:`Machine` holds a circuit's state and decides every change of it:
admitting a call, counting its outcome, opening, probing and closing. It is
driven by the time (``now``, read by its owner) and by outcomes, and returns
what changed as a :class:`Transition`; it never reads a clock, takes a lock,
calls user code or emits an event. Its owner (the breaker) serialises calls
to it, records totals and announces transitions. Keeping the decisions here,
apart from those edges, lets them be tested alone and lets the state live
elsewhere (a store shared by many processes) behind the same decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ._config import TIME_BUCKETS, RateWindow
from ._enums import StrValueEnum
from ._validation import is_finite

if TYPE_CHECKING:
    from ._config import BreakerConfig

__all__ = ["CircuitState", "Machine", "Spell", "Ticket", "Transition", "Window"]


class CircuitState(StrValueEnum):
    """
    The state of a circuit breaker.

    Members are strings, so ``breaker.state == "open"`` works.
    """

    CLOSED = "closed"
    """Calls pass through; consecutive failures are counted."""
    OPEN = "open"
    """Calls are rejected at once, until the recovery timeout has passed."""
    HALF_OPEN = "half_open"
    """A limited number of probe calls pass; their outcome closes or re-opens."""


CLOSED: Final = CircuitState.CLOSED
OPEN: Final = CircuitState.OPEN
HALF_OPEN: Final = CircuitState.HALF_OPEN


class Spell:
    """
    One stretch of time in one state; never changed once made.

    A call remembers the spell it was admitted under. Its outcome moves the
    state machine only while that same spell lasts (compared by identity): a
    late outcome is counted in the totals alone. Reading the current spell
    is one attribute read, so state and deadline are always seen together.
    """

    __slots__ = ("length", "state", "until")

    def __init__(
        self, state: CircuitState, until: float = -math.inf, length: float = 0.0
    ) -> None:
        self.state = state
        # When an open spell ends (on the owner's clock); -inf for the others.
        self.until = until
        # How long an open spell lasts (its recovery timeout); 0 for the
        # others. Time left beyond it means the clock went back.
        self.length = length

    def __repr__(self) -> str:
        return f"<Spell {self.state.value} until={self.until}>"


class Ticket:
    """
    One call's claim on a probe slot: its owner marks it done when the call ends.

    The machine takes back the slot of a done ticket at the next admission,
    so a call interrupted after marking its ticket (a plain attribute store,
    which no signal can interrupt) but before giving the slot back never
    keeps it.
    """

    __slots__ = ("done", "permit")

    def __init__(self) -> None:
        self.done: bool = False
        # A fleet-wide probe permit this call holds besides its slot here
        # (from a shared store); the store's own token, None without one.
        self.permit: object = None


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state the machine made: what its owner announces."""

    old: CircuitState
    new: CircuitState
    reason: str
    at: float
    # With a window's reason: (calls, failure rate, slow-call rate) then.
    rates: tuple[int, float, float] | None = None


# The time a machine has never been driven with: one float shared by all.
_NEVER: Final = -math.inf

# Every machine starts in this spell: identity only matters between the spells
# of one machine, and sharing it saves an object per breaker.
FRESH: Final = Spell(CLOSED)


class Window:
    """The calls a :class:`~aiobreakers.RateWindow` holds now, counted in O(1)."""

    __slots__ = (
        "_buckets",
        "_latest",
        "_next",
        "_ring",
        "_width",
        "calls",
        "failures",
        "slow",
        "window",
    )

    def __init__(self, window: RateWindow) -> None:
        self.window = window
        self.calls = 0
        self.failures = 0
        self.slow = 0
        if window.calls is not None:
            # One byte a call: bit 0 failed, bit 1 slow.
            self._ring = bytearray(window.calls)
            self._next = 0
        else:
            assert window.seconds is not None  # noqa: S101 - checked by RateWindow
            self._width = window.seconds / TIME_BUCKETS
            # Per bucket: [calls, failures, slow].
            self._buckets = [[0, 0, 0] for _ in range(TIME_BUCKETS)]
            self._latest: int | None = None

    def clear(self) -> None:
        """Forget every call (the circuit changed state)."""
        self.calls = self.failures = self.slow = 0
        if self.window.calls is not None:
            self._ring[:] = bytes(len(self._ring))
            self._next = 0
        else:
            for bucket in self._buckets:
                bucket[:] = (0, 0, 0)
            self._latest = None

    def record(self, failed: bool, duration: float | None, now: float) -> str | None:
        """
        Add one finished call; return why the circuit must open, if it must.

        Returns:
            ``"failure_rate"`` or ``"slow_call_rate"`` when that rate has
            reached its threshold over at least ``minimum_calls`` calls, else
            ``None``.
        """
        limit = self.window.slow_call_duration
        slow = limit is not None and duration is not None and duration > limit
        if self.window.calls is None:
            self._record_time(failed=failed, slow=slow, now=now)
            return self._verdict()
        # The count window, inline: this runs on every call of the breaker.
        ring = self._ring
        index = self._next
        if self.calls == len(ring):
            evicted = ring[index]
            self.failures -= evicted & 1
            self.slow -= evicted >> 1
        else:
            self.calls += 1
        ring[index] = failed | (slow << 1)
        self._next = index + 1 if index + 1 < len(ring) else 0
        self.failures += failed
        self.slow += slow
        return self._verdict()

    @property
    def takes_bulk(self) -> bool:
        """
        Whether successes may be added in bulk, and late, once it is warm.

        True for a count window that judges failures only. Once it holds
        ``minimum_calls`` calls, a success can only lower its failure rate
        (it adds a call, or replaces an older one), so it can never open the
        circuit: counting it at the next decision changes no decision.
        """
        return self.window.calls is not None and self.window.slow_call_rate is None

    def record_successes(self, count: int) -> None:
        """Add *count* successes at once (only where :attr:`takes_bulk`)."""
        ring = self._ring
        size = len(ring)
        start = self._next
        end = start + min(count, size)
        spans = [(start, end)] if end <= size else [(start, size), (0, end - size)]
        for low, high in spans:
            evicted = ring[low:high]
            both = evicted.count(3)
            self.failures -= evicted.count(1) + both
            self.slow -= evicted.count(2) + both
            ring[low:high] = bytes(high - low)
        self.calls = min(size, self.calls + count)
        self._next = (start + count) % size

    def rates(self, now: float) -> tuple[int, float, float]:
        """Return ``(calls, failure_rate, slow_call_rate)`` in the window now."""
        if self.window.seconds is not None:
            self._expire(self._epoch(now))
        if not self.calls:
            return (0, 0.0, 0.0)
        return (self.calls, self.failures / self.calls, self.slow / self.calls)

    def _verdict(self) -> str | None:
        window = self.window
        if self.calls < window.minimum_calls:
            return None
        # Divided, not multiplied: 7 / 100 == 0.07, but 0.07 * 100 > 7.
        if window.failure_rate is not None and (
            self.failures / self.calls >= window.failure_rate
        ):
            return "failure_rate"
        if window.slow_call_rate is not None and (
            self.slow / self.calls >= window.slow_call_rate
        ):
            return "slow_call_rate"
        return None

    def _epoch(self, now: float) -> int:
        return math.floor(now / self._width)

    def _record_time(self, *, failed: bool, slow: bool, now: float) -> None:
        epoch = self._epoch(now)
        if self._latest is not None:
            # A clock that went backwards (swapped defaults) adds to the newest.
            epoch = max(epoch, self._latest)
        self._expire(epoch)
        bucket = self._buckets[epoch % TIME_BUCKETS]
        bucket[0] += 1
        bucket[1] += failed
        bucket[2] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow

    def _expire(self, epoch: int) -> None:
        """Drop the buckets that fell out of the window by *epoch*."""
        latest = self._latest
        if latest is not None and epoch <= latest:
            return
        first = epoch - TIME_BUCKETS + 1
        if latest is not None:
            first = max(first, latest + 1)
        # At most TIME_BUCKETS steps, however long the window sat idle.
        for each in range(first, epoch + 1):
            bucket = self._buckets[each % TIME_BUCKETS]
            self.calls -= bucket[0]
            self.failures -= bucket[1]
            self.slow -= bucket[2]
            bucket[:] = (0, 0, 0)
        self._latest = epoch


class Machine:
    """
    A circuit's state and the rules that change it.

    Not thread-safe by itself: its owner calls it under one lock, and may read
    :attr:`spell` (one attribute) without it.
    """

    __slots__ = (
        "config",
        "consecutive_failures",
        "deferred",
        "failed_probes",
        "now",
        "probe_successes",
        "probes",
        "spell",
        "threshold",
        "window",
    )

    def __init__(self, config: BreakerConfig) -> None:
        self.config = config
        policy = config.trip_policy
        # The trip rule, read once: a window, or a count of failures in a row.
        self.window = Window(policy) if isinstance(policy, RateWindow) else None
        self.threshold = 0 if isinstance(policy, RateWindow) else policy.threshold
        self.spell = FRESH
        # Counted failures in a row while closed (without a window).
        self.consecutive_failures = 0
        # Re-opens by failed probes since the circuit last closed: they grow
        # the recovery timeout (BreakerConfig.recovery_multiplier).
        self.failed_probes = 0
        # Successful probes in the current half-open spell.
        self.probe_successes = 0
        # Half-open calls in flight, from this spell or an earlier one: the
        # caller's ticket for each, and when it was admitted. Made on first
        # need (most circuits never probe).
        self.probes: dict[Ticket, float] | None = None
        # The latest time the machine was driven with (see observe).
        self.now = _NEVER
        # Whether the window's verdict is left to a fleet (a shared store that
        # combines every process's counts): the window still counts calls.
        self.deferred = False

    # -- time -----------------------------------------------------------------

    def observe(self, reading: float) -> float:
        """
        Return the time to decide on, given a reading of the owner's clock.

        A reading that is not finite is ignored: the time stays where it was.
        A reading earlier than the last one (a clock that went backwards, or
        another clock put in its place, such as a fake clock installed as the
        default) shifts the open deadline and the probes' admission times by
        the same amount, so the time left stays what it was, and restarts a
        time window: no jump can wedge the circuit or stretch a wait.
        """
        last = self.now
        if not is_finite(reading):
            return last if last > _NEVER else 0.0
        if reading < last:
            self._shift(reading - last)
        self.now = reading
        return reading

    def _shift(self, delta: float) -> None:
        spell = self.spell
        if spell.state is OPEN:
            self.spell = Spell(OPEN, spell.until + delta, spell.length)
        if self.probes:
            self.probes = {ticket: at + delta for ticket, at in self.probes.items()}
        if self.window is not None and self.window.window.seconds is not None:
            self.window.clear()

    # -- admitting ------------------------------------------------------------

    def admit(
        self, now: float, ticket: Ticket
    ) -> tuple[Spell | None, Transition | None]:
        """
        Decide whether a call may run now.

        Args:
            now: The time (see :meth:`observe`).
            ticket: A fresh ticket for the call: an admitted half-open call
                holds a probe slot under it until :meth:`record` or
                :meth:`release` returns it, until the ticket is done and
                another call asks for a slot, or until it has been held for
                ``probe_timeout`` seconds.

        Returns:
            The spell the call runs under (``None``: rejected), and the
            transition that deciding made (an expired open spell turning
            half-open), if any.
        """
        change = self.poll(now)
        spell = self.spell
        if spell.state is CLOSED:
            return spell, change
        if spell.state is HALF_OPEN:
            probes = self.probes
            if probes is None:
                probes = self.probes = {}
            elif probes:
                self._reclaim(probes, now)
            if len(probes) < self.config.half_open_max_calls:
                probes[ticket] = now
                return spell, change
        return None, change

    def _reclaim(self, probes: dict[Ticket, float], now: float) -> None:
        """Take back the slots of done tickets, and of those past probe_timeout."""
        oldest = now - self.config.probe_timeout
        for ticket, admitted in list(probes.items()):
            if ticket.done or admitted <= oldest:
                del probes[ticket]

    def holds(self, ticket: Ticket) -> bool:
        """Whether *ticket* holds a probe slot (one dict lookup: no lock needed)."""
        probes = self.probes
        return probes is not None and ticket in probes

    def release(self, ticket: Ticket) -> None:
        """Return the probe slot *ticket* holds, if it holds one."""
        if self.probes:
            self.probes.pop(ticket, None)

    def forget_probes(self) -> None:
        """Drop every probe slot (in a forked child: the parent's calls never end)."""
        self.probes = None

    def poll(self, now: float) -> Transition | None:
        """Move an open circuit whose recovery timeout has passed to half-open."""
        spell = self.spell
        if spell.state is OPEN and now >= spell.until:
            return self._enter(HALF_OPEN, now, "recovery_timeout")
        return None

    def retry_after(self, now: float) -> float:
        """Seconds until an open circuit lets a probe through; 0.0 otherwise."""
        spell = self.spell
        return max(0.0, spell.until - now) if spell.state is OPEN else 0.0

    # -- outcomes -------------------------------------------------------------

    def record(
        self,
        spell: Spell,
        now: float,
        duration: float | None,
        *,
        failed: bool,
        ticket: Ticket | None = None,
    ) -> Transition | None:
        """
        Count the outcome of a call admitted under *spell* with *ticket*.

        A late outcome (the spell has ended) frees its probe slot and changes
        nothing else.
        """
        if ticket is not None:
            self.release(ticket)
        if spell is not self.spell:
            return None
        if spell.state is HALF_OPEN:
            return self._judge_probe(now, failed=failed)
        window = self.window
        if window is not None:
            reason = window.record(failed, duration, now)
            return (
                None
                if reason is None or self.deferred
                else self._enter(OPEN, now, reason, window.rates(now))
            )
        if not failed:
            self.consecutive_failures = 0
            return None
        self.consecutive_failures += 1
        if self.consecutive_failures < self.threshold:
            return None
        return self._enter(OPEN, now, "failure_threshold")

    def _judge_probe(self, now: float, *, failed: bool) -> Transition | None:
        if failed:
            return self._enter(OPEN, now, "probe_failed")
        self.probe_successes += 1
        if self.probe_successes < self.config.success_threshold:
            return None
        return self._enter(CLOSED, now, "probes_succeeded")

    def absorb(self, tokens: list[object]) -> None:
        """
        Count closed-circuit successes that were tallied in bulk.

        *tokens* holds the spell of each (and other tokens, ignored); only
        those of the current spell count. Without a window, all they change is
        the count of consecutive failures. A window takes them only where
        :attr:`Window.takes_bulk` (its owner sees to it), so they cannot open
        the circuit either.
        """
        spell = self.spell
        window = self.window
        if window is not None:
            count = tokens.count(spell)
            if count:
                window.record_successes(count)
        elif self.consecutive_failures and spell in tokens:
            self.consecutive_failures = 0

    # -- forcing --------------------------------------------------------------

    def trip(self, now: float, reason: str = "trip") -> list[Transition]:
        """
        Open the circuit with a fresh recovery timeout.

        An open circuit whose timeout has passed counts as half-open first, as
        it would for a call, so the result never depends on whether anyone
        looked in between. Returns the transitions made, in order.
        """
        made = [self.poll(now), self._enter(OPEN, now, reason)]
        return [change for change in made if change is not None]

    def force_half_open(self, now: float) -> list[Transition]:
        """Let probes through at once (for :mod:`aiobreakers.testing`)."""
        made = [self.poll(now), self._enter(HALF_OPEN, now, "forced")]
        return [change for change in made if change is not None]

    def reset(self, now: float) -> Transition | None:
        """
        Close the circuit and forget every count, in a new spell.

        Calls admitted before the reset cannot move the new spell, and every
        probe slot is free again.
        """
        old = self.spell.state
        self.spell = Spell(CLOSED)
        self.failed_probes = 0
        self.probes = None
        self._forget()
        if old is CLOSED:
            return None
        return Transition(old, CLOSED, "reset", now)

    def adopt(
        self,
        state: CircuitState,
        now: float,
        *,
        left: float = 0.0,
        length: float = 0.0,
        failed_probes: int = 0,
    ) -> Transition | None:
        """
        Take a state decided elsewhere (by the fleet sharing this circuit).

        Always starts a new spell with fresh counts, so that outcomes of calls
        admitted before cannot move it.

        Args:
            state: The state to take; an open state with no time *left* is
                taken as half-open.
            now: The time (see :meth:`observe`).
            left: Seconds left of an open spell.
            length: How long that open spell lasts in all.
            failed_probes: Re-opens by failed probes since the circuit last
                closed (they grow the next recovery timeout).

        Returns:
            The transition, reason ``"fleet"``; ``None`` when the state stays
            the same.
        """
        old = self.spell.state
        if state is OPEN and left > 0.0:
            # The length bounds what a rejection may see left (see the
            # breaker's short path): at least what is left now.
            self.spell = Spell(OPEN, now + left, max(length, left))
        else:
            state = HALF_OPEN if state is OPEN else state
            self.spell = Spell(state)
        self.failed_probes = failed_probes
        self._forget()
        return None if old is state else Transition(old, state, "fleet", now)

    def rates(self, now: float) -> tuple[int, float, float] | None:
        """Return the window's ``(calls, failure_rate, slow_call_rate)``, if any."""
        return None if self.window is None else self.window.rates(now)

    def _enter(
        self,
        new: CircuitState,
        now: float,
        reason: str,
        rates: tuple[int, float, float] | None = None,
    ) -> Transition | None:
        old = self.spell.state
        if new is OPEN:
            if reason == "probe_failed":
                self.failed_probes += 1
            # A fresh recovery window even when already open (trip()).
            length = self.config.recovery_timeout_after(self.failed_probes)
            self.spell = Spell(OPEN, now + length, length)
            if old is OPEN:
                return None
        elif old is new:
            return None
        else:
            if new is CLOSED:
                self.failed_probes = 0
            self.spell = Spell(new)
        self._forget()
        return Transition(old, new, reason, now, rates)

    def _forget(self) -> None:
        """Start the counts of a new spell afresh."""
        self.consecutive_failures = 0
        self.probe_successes = 0
        if self.window is not None:
            self.window.clear()
