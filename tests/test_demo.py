"""python -m aiobreakers demo: the scenario, its output, and the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aiobreakers.__main__ import main


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
