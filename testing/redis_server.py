"""
A real redis-server on a free loopback port, for tests and benchmarks.

Debian's ``redis-server`` package (``.ci/run`` installs it). The server keeps
nothing on disk (no RDB, no AOF), so a restart starts it empty, as after
``FLUSHALL``. It can be stopped, killed, frozen (``SIGSTOP``) and thawed, to
show what a fleet does while Redis is away.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from typing import IO, Final

__all__ = ["RedisServer", "find_redis_server"]

# How long a starting server may take to say it is ready.
START_SECONDS: Final = 10.0


def find_redis_server() -> str | None:
    """Return the path of redis-server, or ``None`` when it is not installed."""
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process; :meth:`start` it, :meth:`stop` it at the end."""

    def __init__(self, executable: str | None = None) -> None:
        found = executable or find_redis_server()
        if found is None:
            raise FileNotFoundError("redis-server is not installed")
        self.executable = found
        self.port = _free_port()
        self._dir = tempfile.mkdtemp(prefix="aiobreakers-redis-")
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's ``redis://`` URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server on its port, and return once it accepts connections."""
        process = subprocess.Popen(  # noqa: S603 - our own arguments
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
                "--loglevel",
                "notice",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._process = process
        assert process.stdout is not None
        if not self._await_ready(process.stdout):
            self.kill()
            raise RuntimeError(f"redis-server did not start on port {self.port}")

    def _await_ready(self, output: IO[str]) -> bool:
        """Read the server's log until it says it is ready (no polling)."""
        ready = threading.Event()

        def read() -> None:
            # The rest of the log is read and dropped, so the pipe never
            # fills; the pipe is closed when the server exits.
            with output:
                for line in output:
                    if "Ready to accept connections" in line:
                        ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        return ready.wait(START_SECONDS)

    def _reap(self, process: subprocess.Popen[str]) -> None:
        process.wait(START_SECONDS)
        if self._reader is not None:
            self._reader.join(START_SECONDS)
        self._process = self._reader = None

    def stop(self) -> None:
        """Stop the server (SIGTERM), and wait for it to exit."""
        process = self._process
        if process is None:
            return
        self.thaw()
        process.terminate()
        self._reap(process)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): connections drop without a word."""
        process = self._process
        if process is None:
            return
        process.kill()
        self._reap(process)

    def freeze(self) -> None:
        """Stop the server's process (SIGSTOP): connections stay open, unanswered."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen server go on (SIGCONT)."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Stop and start again on the same port, empty."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
