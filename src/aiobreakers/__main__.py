"""
``python -m aiobreakers``: commands that show the library at work.

``python -m aiobreakers demo`` plays a flaky dependency going down and
recovering behind retry over a circuit breaker; ``--fast`` runs it at once on a
virtual clock, and ``--metrics-port PORT`` serves its Prometheus metrics on
127.0.0.1 meanwhile. Importing this module only defines :func:`main`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

_MAX_PORT: Final = 65535


def _metrics_port(text: str) -> int:
    """Parse ``--metrics-port``: a port number, and prometheus_client installed."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= _MAX_PORT:
        raise argparse.ArgumentTypeError(f"must be 0 to {_MAX_PORT}, got {port}")
    try:
        import prometheus_client  # noqa: F401, PLC0415 - only checks it is there
    except ImportError:
        raise argparse.ArgumentTypeError(
            "needs prometheus_client: pip install 'aiobreakers[prometheus]'"
        ) from None
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiobreakers",
        description="Async-first circuit breakers and retry policies, at work.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="watch a flaky dependency go down and recover (about 10 s)",
        description=(
            "A client calls a flaky inventory service through retry over a"
            " circuit breaker with a fallback. Prints every state change, retry"
            " and fallback, then the final metrics."
        ),
    )
    demo.add_argument(
        "--fast",
        action="store_true",
        help="run at once on a virtual clock (aiobreakers.testing.FakeClock)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=7,
        help="seed for the retry jitter (default: %(default)s)",
    )
    demo.add_argument(
        "--metrics-port",
        type=_metrics_port,
        metavar="PORT",
        help=(
            "serve Prometheus metrics at http://127.0.0.1:PORT/metrics while the"
            " demo runs (0: any free port); needs prometheus_client"
            " (pip install 'aiobreakers[prometheus]')"
        ),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run a command; return the process exit status.

    Args:
        argv: The arguments after ``python -m aiobreakers``; ``None`` reads
            :data:`sys.argv`. An unknown command exits with status 2 and a
            usage message.
    """
    args = _parser().parse_args(argv)
    # Only "demo" exists; argparse has rejected anything else.
    from ._demo import main as demo  # noqa: PLC0415 - keeps `import` light

    return demo(fast=args.fast, seed=args.seed, metrics_port=args.metrics_port)


if __name__ == "__main__":
    raise SystemExit(main())
