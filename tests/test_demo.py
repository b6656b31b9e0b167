"""python -m aiobreakers demo: the scenario, its output, and the command line."""

from __future__ import annotations

import gc
import io
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiobreakers import CircuitBreaker, registry
from aiobreakers.__main__ import main
from aiobreakers._demo import main as demo_main


def test_fast_demo_shows_transitions_retries_fallbacks_and_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--fast"]) == 0
    out = capsys.readouterr().out
    transitions = [
        line.split("breaker 'inventory': ")[1]
        for line in out.splitlines()
        if "breaker 'inventory': " in line and " -> " in line
    ]
    assert transitions == [
        "CLOSED -> OPEN  (failure_threshold)",
        "OPEN -> HALF_OPEN  (recovery_timeout)",
        "HALF_OPEN -> OPEN  (probe_failed)",
        "OPEN -> HALF_OPEN  (recovery_timeout)",
        "HALF_OPEN -> CLOSED  (probes_succeeded)",
    ]
    assert "retry 1 in " in out
    assert "retries exhausted after 3 attempts" in out
    assert "served by the fallback" in out
    assert "(fallback)" in out
    assert "final metrics" in out
    metrics = dict(
        line.split(maxsplit=1)
        for line in out.splitlines()
        if line.startswith("  total_")
    )
    assert metrics["total_trips"].strip() == "2"
    assert out.rstrip().endswith("-" * 10)


def test_fast_demo_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    main(["demo", "--fast", "--seed", "3"])
    first = capsys.readouterr().out
    main(["demo", "--fast", "--seed", "3"])
    assert capsys.readouterr().out == first


def test_the_breaker_metrics_add_up(capsys: pytest.CaptureFixture[str]) -> None:
    main(["demo", "--fast"])
    rows = capsys.readouterr().out.split("final metrics")[1].splitlines()
    breaker = dict(
        row.split() for row in rows if row.startswith("  ") and len(row.split()) == 2
    )
    assert int(breaker["total_calls"]) == int(breaker["total_successes"]) + int(
        breaker["total_failures"]
    )


def test_python_dash_m_runs_the_demo() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiobreakers", "demo", "--fast"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "CLOSED -> OPEN" in result.stdout
    assert "final metrics" in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bogus"], "invalid choice: 'bogus' (choose from 'demo')"),
        ([], "the following arguments are required: COMMAND"),
        (["demo", "--slow"], "unrecognized arguments: --slow"),
    ],
)
def test_bad_command_lines_exit_2_with_usage(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m aiobreakers")
    assert message in err


def test_importing_main_has_no_side_effects() -> None:
    code = "import sys, aiobreakers.__main__; print('aiobreakers._demo' in sys.modules)"
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
    assert result.stderr == ""


# -- --metrics-port -------------------------------------------------------------

# Loopback only, and never through a proxy the environment may name.
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ScrapingOutput(io.StringIO):
    """
    The demo's output; it scrapes the metrics once, when the circuit opens.

    The demo is paused inside the write, so the scrape sees exactly the state
    of that moment: deterministic, with no sleeping and no timing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.url = ""
        self.scraped = ""

    def write(self, text: str) -> int:
        written = super().write(text)
        if not self.url and (
            found := re.search(r"http://127\.0\.0\.1:\d+/metrics", text)
        ):
            self.url = found.group()
        if not self.scraped and "CLOSED -> OPEN" in text:
            with _LOOPBACK.open(self.url, timeout=10) as response:
                self.scraped = response.read().decode()
        return written


def samples(text: str, breaker: str) -> dict[tuple[str, str], float]:
    """The samples of one breaker, by metric name and its other label."""
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            if labels.pop("breaker", None) == breaker:
                found[sample.name, next(iter(labels.values()), "")] = sample.value
    return found


def figures(breakers: list[CircuitBreaker[..., Any]]) -> dict[tuple[str, str], float]:
    """What *breakers* add to the series of their name, as :func:`samples` says."""
    added: dict[tuple[str, str], float] = {}
    for metrics in (breaker.get_metrics() for breaker in breakers):
        for key, value in [
            (("aiobreakers_breaker_state", metrics["state"]), 1),
            (
                ("aiobreakers_breaker_calls_total", "success"),
                metrics["total_successes"],
            ),
            (("aiobreakers_breaker_calls_total", "failure"), metrics["total_failures"]),
            (
                ("aiobreakers_breaker_calls_total", "rejected"),
                metrics["total_rejected"],
            ),
            (("aiobreakers_breaker_trips_total", ""), metrics["total_trips"]),
        ]:
            added[key] = added.get(key, 0) + value
    return added


def test_metrics_port_serves_the_metrics_while_the_demo_runs() -> None:
    gc.collect()
    # Other tests' breakers named "inventory" are in the same series: their
    # figures are taken out (see "Breakers sharing a name" in the docs).
    others = registry.breakers("inventory")
    out = ScrapingOutput()
    assert demo_main(fast=True, seed=7, out=out, metrics_port=0) == 0
    assert out.getvalue().startswith(f"serving Prometheus metrics at {out.url}\n")
    scraped = samples(out.scraped, "inventory")
    for key, value in figures(others).items():
        scraped[key] -= value
    assert scraped == {
        ("aiobreakers_breaker_state", "closed"): 0,
        ("aiobreakers_breaker_state", "open"): 1,
        ("aiobreakers_breaker_state", "half_open"): 0,
        ("aiobreakers_breaker_calls_total", "success"): 4,
        ("aiobreakers_breaker_calls_total", "failure"): 3,
        ("aiobreakers_breaker_calls_total", "rejected"): 0,
        ("aiobreakers_breaker_trips_total", ""): 1,
    }
    assert (
        'aiobreakers_retry_calls_total{outcome="success",policy="inventory-retry"}'
        in (out.scraped)
    )
    # The server is gone once the demo is over.
    with pytest.raises(urllib.error.URLError):
        _LOOPBACK.open(out.url, timeout=10)


def test_python_dash_m_demo_with_a_metrics_port() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiobreakers", "demo", "--fast", "--metrics-port", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.match(
        r"serving Prometheus metrics at http://127\.0\.0\.1:\d+/metrics\n",
        result.stdout,
    )
    assert "final metrics" in result.stdout


def test_a_busy_metrics_port_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", "--fast", "--metrics-port", str(port)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"cannot serve metrics on 127.0.0.1:{port}: ")
    assert "final metrics" not in captured.out


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("70000", "argument --metrics-port: must be 0 to 65535, got 70000"),
        ("-1", "argument --metrics-port: must be 0 to 65535, got -1"),
        ("http", "argument --metrics-port: not a port number: 'http'"),
    ],
)
def test_bad_metrics_ports_exit_2_with_usage(
    port: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--fast", f"--metrics-port={port}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m aiobreakers demo")
    assert message in err


def test_metrics_port_without_prometheus_client_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from aiobreakers.__main__ import main\n"
        "main(['demo', '--fast', '--metrics-port', '0'])\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.rstrip().endswith(
        "argument --metrics-port: needs prometheus_client:"
        " pip install 'aiobreakers[prometheus]'"
    )
    assert result.stdout == ""
