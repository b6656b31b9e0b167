"""
A fleet of real processes sharing one circuit through a real redis-server.

Each process (tests/fleet_worker.py, spawned) has its own RedisStore and
breaker, and answers commands over a pipe; the test waits on the pipes for
what each process reports (changes of state, outages), never polls.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import TYPE_CHECKING, Any

import pytest
import redis

import fleet_worker

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from redis_server import RedisServer

# Generous: spawning and importing takes a while on a loaded CI machine.
WAIT = 20.0

Message = tuple[Any, ...]


class Member:
    """The test's handle on one process of the fleet."""

    def __init__(self, process: BaseProcess, connection: Connection) -> None:
        self.process = process
        self.connection = connection
        self.events: list[Message] = []

    def _next(self) -> Message:
        if not self.connection.poll(WAIT):
            raise AssertionError(f"{self.process.name} said nothing for {WAIT}s")
        message: Message = self.connection.recv()
        return message

    def ask(self, command: str, argument: object = None) -> Message:
        """Send a command; return its reply (events meanwhile are kept)."""
        self.connection.send((command, argument))
        return self.reply()

    def reply(self) -> Message:
        while True:
            message = self._next()
            if message[0] == "reply":
                return message[1:]
            self.events.append(message[1:])

    def await_event(self, predicate: Callable[[Message], bool]) -> Message:
        """Return the first event that fits, waiting for it if need be."""
        for event in self.events:
            if predicate(event):
                return event
        while True:
            message = self._next()
            assert message[0] == "event", f"a reply nobody asked for: {message}"
            self.events.append(message[1:])
            if predicate(message[1:]):
                return message[1:]

    def await_state(self, state: str) -> Message:
        return self.await_event(lambda event: event[:2] == ("state", state))

    def kill(self) -> None:
        assert self.process.pid is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(WAIT)


class Fleet:
    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.members: list[Member] = []
        self._context = multiprocessing.get_context("spawn")

    def start(self, count: int, config: dict[str, Any], **options: Any) -> list[Member]:
        started = []
        for index in range(count):
            ours, theirs = self._context.Pipe()
            process = self._context.Process(
                target=fleet_worker.serve,
                args=(self.server.url, config, options, theirs),
                name=f"fleet-member-{index}",
                daemon=True,
            )
            process.start()
            member = Member(process, ours)
            started.append(member)
        for member in started:
            assert member.reply() == ("ready",)
        self.members += started
        return started

    def stop(self) -> None:
        for member in self.members:
            if member.process.is_alive():
                member.connection.send(("stop", None))
        for member in self.members:
            member.process.join(WAIT)
            if member.process.is_alive():
                member.kill()


@pytest.fixture
def fleet(redis_server: RedisServer) -> Iterator[Fleet]:
    made = Fleet(redis_server)
    yield made
    made.stop()


TRIPS = {"failure_threshold": 3, "recovery_timeout": 30.0}


def test_one_process_trips_and_every_process_rejects(fleet: Fleet) -> None:
    members = fleet.start(4, TRIPS)
    first, others = members[0], members[1:]

    assert first.ask("fail", 3) == ("open",)

    for member in others:
        assert member.await_state("open") == ("state", "open", "fleet")
        assert member.ask("call") == ("rejected", "open")
    # A reset in any process closes the circuit in all.
    members[2].ask("reset")
    for member in (first, members[1], members[3]):
        assert member.await_state("closed") == ("state", "closed", "fleet")
    for member in members:
        assert member.ask("call") == ("ran", "ok")


def test_the_fleet_rides_out_redis_killed_frozen_and_restarted(
    fleet: Fleet, redis_server: RedisServer
) -> None:
    # Replies may take 40 s: a call that waited on the frozen server would
    # take that long (and never answer in WAIT), one that does not, no time.
    members = fleet.start(3, TRIPS, timeout=2 * WAIT)

    redis_server.kill()
    for member in members:
        member.await_event(lambda event: event == ("degraded",))
        slowest, errors = member.ask("calls", 2_000)
        assert errors == []
        assert slowest < WAIT / 4  # no call waits on the dead server

    redis_server.start()  # empty: as after a restart without persistence
    for member in members:
        member.await_event(lambda event: event == ("recovered",))
    redis_server.freeze()
    try:
        for member in members:
            slowest, errors = member.ask("calls", 2_000)
            assert errors == []
            assert slowest < WAIT / 4
    finally:
        redis_server.thaw()
    # Shared again: a trip reaches the others.
    assert members[0].ask("fail", 3) == ("open",)
    for member in members[1:]:
        member.await_state("open")
        assert member.ask("call") == ("rejected", "open")
    for member in members:
        assert member.ask("flush") == (True,)


def test_a_prober_that_dies_mid_probe_does_not_wedge_the_circuit(
    fleet: Fleet, redis_server: RedisServer
) -> None:
    config = {**TRIPS, "half_open_max_calls": 1, "success_threshold": 1}
    opener, prober, survivor = fleet.start(3, config, permit_ttl=0.2)

    opener.ask("half_open")
    for member in (prober, survivor):
        member.await_state("half_open")

    prober.ask("hang_in_probe")
    prober.await_event(lambda event: event == ("probing",))
    prober.kill()
    # Its permit is the fleet's only one: nobody else may probe...
    assert survivor.ask("call") == ("rejected", "half_open")

    # ...until the permit expires, on the server's clock.
    plain = redis.Redis.from_url(redis_server.url)
    plain.blpop(["nothing"], timeout=0.25)
    plain.close()
    assert survivor.ask("call") == ("ran", "ok")
    opener.await_state("closed")
    assert opener.ask("call") == ("ran", "ok")
