"""
One process of a fleet, for tests/test_redis_fleet.py (run in a spawned process).

It has its own RedisStore and a breaker ``"dependency"`` on it, and takes
commands from the test over a pipe. It sends back replies, tagged
``"reply"``, and, as they happen, the breaker's changes of state and the
store's outages, tagged ``"event"``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

from aiobreakers import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    StateChanged,
    StoreDegraded,
    StoreRecovered,
)
from aiobreakers.redis import RedisStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection

    from aiobreakers import Event


class _Pipe:
    """The worker's end of the pipe: sends from any thread, one at a time."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._lock = threading.Lock()

    def send(self, *message: object) -> None:
        with self._lock:
            self.connection.send(message)

    def emit(self, event: Event) -> None:
        if isinstance(event, StateChanged):
            self.send("event", "state", event.new.value, event.reason)
        elif isinstance(event, StoreDegraded):
            self.send("event", "degraded")
        elif isinstance(event, StoreRecovered):
            self.send("event", "recovered")


def _fail() -> None:
    raise ConnectionError("the dependency is down")


def serve(
    url: str,
    config: dict[str, Any],
    options: dict[str, Any],
    connection: Connection,
) -> None:
    """Run one process of the fleet until told to stop."""
    pipe = _Pipe(connection)
    store = RedisStore.from_url(url, namespace="fleet", sink=pipe, **options)
    breaker = CircuitBreaker(
        "dependency", BreakerConfig(**config), store=store, sink=pipe
    )
    store.flush()
    pipe.send("reply", "ready")
    while True:
        command, argument = connection.recv()
        if command == "stop":
            store.close()
            pipe.send("reply", "stopped")
            return
        pipe.send("reply", *_run(breaker, store, pipe, command, argument))


def _calls(breaker: CircuitBreaker[..., Any], count: int) -> tuple[object, ...]:
    """Make healthy calls: the slowest one, and any error that reached us."""
    slowest, errors = 0.0, []
    for _ in range(count):
        started = time.perf_counter()
        try:
            breaker.call_sync(lambda: None)
        except Exception as error:
            errors.append(repr(error))
        slowest = max(slowest, time.perf_counter() - started)
    return (slowest, errors)


def _fail_times(breaker: CircuitBreaker[..., Any], count: int) -> tuple[object, ...]:
    for _ in range(count):
        with contextlib.suppress(ConnectionError, CircuitOpenError):
            breaker.call_sync(_fail)
    return (breaker.state.value,)


def _call(breaker: CircuitBreaker[..., Any]) -> tuple[object, ...]:
    try:
        return ("ran", breaker.call_sync(lambda: "ok"))
    except CircuitOpenError as rejected:
        return ("rejected", rejected.state)


def _run(
    breaker: CircuitBreaker[..., Any],
    store: RedisStore,
    pipe: _Pipe,
    command: str,
    argument: Any,
) -> tuple[object, ...]:
    commands: dict[str, Callable[[], tuple[object, ...]]] = {
        "call": lambda: _call(breaker),
        "fail": lambda: _fail_times(breaker, argument),
        "calls": lambda: _calls(breaker, argument),
        "trip": lambda: _done(breaker.trip),
        "reset": lambda: _done(breaker.reset),
        # What BreakerRegistry.force does:
        "half_open": lambda: _done(lambda: breaker._force(CircuitState.HALF_OPEN)),
        "hang_in_probe": lambda: _done(lambda: _start_probe_forever(breaker, pipe)),
        "flush": lambda: (store.flush(),),
        "state": lambda: (breaker.state.value,),
    }
    return commands[command]()


def _done(action: Callable[[], None]) -> tuple[object, ...]:
    action()
    return ()


def _start_probe_forever(breaker: CircuitBreaker[..., Any], pipe: _Pipe) -> None:
    threading.Thread(target=_probe_forever, args=(breaker, pipe), daemon=True).start()


def _probe_forever(breaker: CircuitBreaker[..., Any], pipe: _Pipe) -> None:
    def probe() -> None:
        pipe.send("event", "probing")
        threading.Event().wait()  # until the process is killed

    breaker.call_sync(probe)
