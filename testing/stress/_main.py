"""The command line: choose storms, run them, print what ran and what held."""

from __future__ import annotations

import argparse
import platform
import sys
import time
import traceback

from . import _faults, _fleet, _memory, _retries, _tasks, _threads, _wallclock
from ._core import STORMS, Check, Log, Mode

# Importing a storm module registers its storms; they run in this order.
MODULES = (_threads, _tasks, _retries, _faults, _memory, _wallclock, _fleet)
ORDER = ("threads", "tasks", "retries", "faults", "memory", "wallclock", "fleet")
if set(ORDER) != set(STORMS):
    raise RuntimeError(f"ORDER {ORDER} does not list the storms {sorted(STORMS)}")


def parse(argv: list[str]) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="python testing/stress/run.py",
        description="Hammer aiobreakers and check invariants (see README.md).",
    )
    parser.add_argument(
        "--full", action="store_true", help="the full mode (minutes), not the short"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(STORMS),
        metavar="NAME",
        help=f"run only this storm (repeatable): {', '.join(STORMS)}",
    )
    return parser.parse_args(argv)


def show(log: Log) -> None:
    """Print a storm's lines, invariants marked."""
    for line in log.lines:
        if isinstance(line, Check):
            mark = "held  " if line.held else "FAILED"
            detail = f"  [{line.detail}]" if line.detail else ""
            print(f"   {mark} {line.what}{detail}")
        elif line.startswith("-- "):
            print(f"  {line}")
        else:
            print(f"   {line}")


def main(argv: list[str]) -> int:
    """Run the storms; return the exit status (1 if any invariant failed)."""
    args = parse(argv)
    mode = Mode(full=args.full)
    names = args.only or list(ORDER)
    print(
        f"aiobreakers stress, {'full' if mode.full else 'short'} mode:"
        f" Python {platform.python_version()} ({sys.implementation.name}),"
        f" {platform.machine()}, storms: {', '.join(names)}"
    )
    failed: list[str] = []
    held = 0
    began = time.perf_counter()
    for name in names:
        chosen = STORMS[name]
        print(f"\n== {name}: {chosen.summary}")
        log = Log()
        start = time.perf_counter()
        try:
            chosen.run(mode, log)
        except Exception:
            log.expect("the storm ran to the end", False, traceback.format_exc())  # noqa: FBT003
        show(log)
        bad = [check for check in log.checks if not check.held]
        held += len(log.checks) - len(bad)
        failed += [f"{name}: {check.what}" for check in bad]
        print(f"   ({time.perf_counter() - start:.1f} s)")
    total = time.perf_counter() - began
    print(f"\n{held} invariants held, {len(failed)} failed, in {total:.1f} s")
    for what in failed:
        print(f"  FAILED {what}")
    return 1 if failed else 0
