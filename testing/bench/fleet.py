"""Benchmark a fleet of processes sharing circuits through Redis.

Run ``python testing/bench/fleet.py`` (add ``--quick`` for a smoke run of a
few seconds and ``--json PATH`` for machine-readable results). It starts its
own redis-server on a free loopback port and stops it at the end; without
redis-server or redis-py it says so and skips. See ``README.md`` beside this
file.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _impls import SUBJECT, Library
from _report import machine_meta

# testing/redis_server.py, the server the tests start too, is one directory
# up: put testing/ on the path (this script's own directory is on it already,
# as for run.py). Spawned worker processes inherit the path.
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from redis_server import RedisServer, find_redis_server

if TYPE_CHECKING:
    from collections.abc import Sequence

    from _fleet import FleetSettings

VERSIONS = (SUBJECT, "redis", "pybreaker")


def _missing() -> str | None:
    """Say what the benchmark needs and lacks; ``None`` when nothing."""
    if find_redis_server() is None:
        return (
            "redis-server is not installed (Debian's package: apt-get install"
            " redis-server)"
        )
    if importlib.util.find_spec("redis") is None:
        return "redis-py is not installed (pip install 'aiobreakers[redis]')"
    return None


def _meta(
    settings: FleetSettings, server_version: str, *, quick: bool
) -> dict[str, Any]:
    return {
        **machine_meta(),
        "quick": quick,
        "redis_server": server_version,
        "versions": {name: Library(name=name).version() for name in VERSIONS},
        "settings": dataclasses.asdict(settings),
    }


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark breakers sharing circuits through Redis: the hot"
        " path against no store and pybreaker's Redis storage, Redis commands"
        " per call, trip propagation across processes, calls while Redis is"
        " frozen. Starts its own redis-server on a free loopback port."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny counts and short phases: checks that the benchmark works",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the results as JSON"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start a redis-server, run every measurement, print the tables."""
    args = _parse(argv)
    missing = _missing()
    if missing is not None:
        print(f"fleet benchmark skipped: {missing}")
        # As for the tests: with CI set, what is missing is an error.
        return 1 if os.environ.get("CI") else 0
    # Imported only now: they import redis-py, whose presence is checked above.
    import _fleet  # noqa: PLC0415
    import _fleet_propagation  # noqa: PLC0415
    import _fleet_report  # noqa: PLC0415
    import redis  # noqa: PLC0415

    settings = _fleet.QUICK if args.quick else _fleet.FULL
    server = RedisServer()
    server.start()
    try:
        with redis.Redis.from_url(server.url) as admin:
            server_version = str(admin.info("server")["redis_version"])
        meta = _meta(settings, server_version, quick=args.quick)
        versions = ", ".join(f"{n} {v}" for n, v in meta["versions"].items())
        print(
            f"Python {meta['python']} on {meta['platform']}, {meta['cpus']} CPUs;"
            f" redis-server {server_version} on 127.0.0.1:{server.port}\n"
            f"{versions}\n{settings.rounds} rounds, median ns/call; ratio ="
            " median of (call / baseline in the same round)",
            flush=True,
        )
        timing = _fleet.run_timing(server.url, settings)
        for case in timing:
            print(f"\n{_fleet_report.timing_block(case)}", flush=True)
        commands = _fleet.run_commands(server.url, settings)
        print(f"\n{_fleet_report.commands_block(commands)}", flush=True)
        propagation = _fleet_propagation.measure_propagation(
            server.url,
            processes=settings.processes,
            rounds=settings.propagation_rounds,
        )
        print(f"\n{_fleet_report.propagation_block(propagation)}", flush=True)
        with _fleet.quiet_store_warnings():
            freeze = _fleet.run_freeze(server, settings)
        print(f"\n{_fleet_report.freeze_block(freeze)}", flush=True)
    finally:
        server.close()
    results = _fleet_report.Results(
        timing=timing, commands=commands, propagation=propagation, freeze=freeze
    )
    print(f"\n{_fleet_report.summary_block(results)}")
    if args.json is not None:
        document = _fleet_report.to_json(meta, results)
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
