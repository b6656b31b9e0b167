from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from aiobreakers.testing import FakeClock

pytest_plugins = ["pytester"]

# How long a forked child may take before it counts as deadlocked.
CHILD_SECONDS = 10.0


@pytest.fixture
def clock(fake_clock: FakeClock) -> FakeClock:
    """The plugin's virtual clock: the default, and injected where tests say."""
    return fake_clock


class ForkChildren(Protocol):
    def __call__(self, work: Callable[[], bool], children: int = 1) -> list[int]: ...


def _reap(pids: list[int]) -> list[int]:
    """
    Wait for every child, at most CHILD_SECONDS; kill those that hang.

    Returns each child's exit status, -1 for one that had to be killed. A
    thread blocks in waitpid, so nothing polls; the main thread waits on it
    with a timeout, and kills what is left (waitpid then returns).
    """
    statuses: dict[int, int] = {}

    def reap() -> None:
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            statuses[pid] = os.waitstatus_to_exitcode(status)

    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    reaper.join(CHILD_SECONDS)
    hung = [pid for pid in pids if pid not in statuses]
    for pid in hung:
        os.kill(pid, signal.SIGKILL)
    reaper.join()
    return [-1 if pid in hung else statuses[pid] for pid in pids]


@pytest.fixture
def fork_children() -> ForkChildren:
    """
    Fork *children* processes that each run *work*; return their statuses.

    A child exits 0 if *work* returns True, else 1; -1 means it hung (a
    deadlock) and was killed by its PID after CHILD_SECONDS.
    """

    def run(work: Callable[[], bool], children: int = 1) -> list[int]:
        pids = []
        for _ in range(children):
            pid = os.fork()
            if pid == 0:  # the child
                code = 1
                try:
                    code = 0 if work() else 1
                finally:
                    os._exit(code)
            pids.append(pid)
        return _reap(pids)

    return run


# testing/redis_server.py is shared with the benchmark: import it from there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testing"))

from redis_server import RedisServer, find_redis_server  # noqa: E402


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """
    A fresh, empty redis-server on a free loopback port, for one test.

    A test may stop, kill, freeze or restart it. Without redis-server
    installed the test is skipped, unless ``CI`` is set: there it must run.
    """
    if find_redis_server() is None:
        reason = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the Redis tests", pytrace=False)
        pytest.skip(reason)
    server = RedisServer()
    server.start()
    yield server
    server.close()
