"""
Bad input fails where it is given, naming the field and what to do (issue 12).

Ports (a class for an instance, a method that is not callable), hooks that
could never be called as they will be, time and count windows out of bounds,
and random sources that draw outside the range asked for.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import types
from typing import TYPE_CHECKING, Any, Final

import pytest

from aiobreakers import (
    BackoffStrategy,
    BreakerConfig,
    CircuitBreaker,
    RateWindow,
    RetryConfig,
    RetryPolicy,
    get_defaults,
    set_defaults,
)
from aiobreakers.testing import (
    BreakerSpy,
    FakeClock,
    FakeRandom,
    RetrySpy,
    add_sink,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# -- ports ------------------------------------------------------------------


def build_breaker(**ports: Any) -> object:
    return CircuitBreaker("validation", **ports)


def build_policy(**ports: Any) -> object:
    return RetryPolicy("validation", **ports)


def install_defaults(**ports: Any) -> object:
    return set_defaults(**ports)


# Every place a port is given, and the ports it takes there.
SITES: Final[dict[str, tuple[Callable[..., object], tuple[str, ...]]]] = {
    "CircuitBreaker": (build_breaker, ("clock", "sink")),
    "RetryPolicy": (build_policy, ("clock", "sleeper", "random", "sink")),
    "set_defaults": (install_defaults, ("clock", "sleeper", "random", "sink")),
}
SITE_PORTS: Final = [
    pytest.param(site, port, id=f"{site}-{port}")
    for site, (_, ports) in SITES.items()
    for port in ports
]

# Each port: its protocol, a class implementing it, and its methods.
PORTS: Final[dict[str, tuple[str, type, tuple[str, ...]]]] = {
    "clock": ("Clock", FakeClock, ("monotonic",)),
    "sleeper": ("Sleeper", FakeClock, ("sleep_async", "sleep_sync")),
    "random": ("RandomSource", FakeRandom, ("uniform",)),
    "sink": ("EventSink", BreakerSpy, ("emit",)),
}
PORT_METHODS: Final = [
    pytest.param(site, port, method, id=f"{site}-{port}.{method}")
    for site, (_, ports) in SITES.items()
    for port in ports
    for method in PORTS[port][2]
]


@pytest.fixture(autouse=True)
def restore_defaults() -> Iterator[None]:
    """Put back the process-wide defaults that a test installed."""
    previous = get_defaults()
    yield
    previous.install()


def fake(port: str, **overrides: object) -> types.SimpleNamespace:
    """Return a port with no base class: each method callable unless overridden."""
    methods: dict[str, object] = dict.fromkeys(PORTS[port][2], lambda *_: None)
    methods.update(overrides)
    return types.SimpleNamespace(**methods)


@pytest.mark.parametrize(("site", "port"), SITE_PORTS)
def test_a_port_given_as_a_class_asks_for_an_instance(site: str, port: str) -> None:
    """A class where an instance is expected fails at once, saying to call it."""
    build, _ = SITES[site]
    protocol, cls, _ = PORTS[port]
    name = cls.__name__
    expected = (
        f"{port} must be an instance implementing {protocol}, got the class"
        f" {name}: pass an instance, {name}() rather than {name}"
    )
    with pytest.raises(TypeError, match=re.escape(expected)):
        build(**{port: cls})


@pytest.mark.parametrize(("site", "port"), SITE_PORTS)
def test_a_class_that_does_not_implement_the_port_is_rejected(
    site: str, port: str
) -> None:
    """A class that is not even the right kind gets no advice to call it."""
    build, _ = SITES[site]
    protocol = PORTS[port][0]
    expected = (
        f"{port} must be an instance implementing {protocol}, got the class int:"
        f" pass an instance of a class implementing {protocol}"
    )
    with pytest.raises(TypeError, match=re.escape(expected)):
        build(**{port: int})


@pytest.mark.parametrize(("site", "port", "method"), PORT_METHODS)
def test_a_port_method_that_is_not_callable_is_rejected(
    site: str, port: str, method: str
) -> None:
    """Each method of the protocol must be callable, and the error names it."""
    build, _ = SITES[site]
    protocol = PORTS[port][0]
    with pytest.raises(
        TypeError,
        match=re.escape(f"must implement the {protocol} protocol, got namespace(")
        + ".*"
        + re.escape(f": {port}.{method} must be callable, got int 5"),
    ):
        build(**{port: fake(port, **{method: 5})})


@pytest.mark.parametrize(("site", "port", "method"), PORT_METHODS)
def test_a_port_missing_a_method_is_rejected_naming_it(
    site: str, port: str, method: str
) -> None:
    """A port without one of the protocol's methods names the missing one."""
    build, _ = SITES[site]
    protocol = PORTS[port][0]
    value = fake(port)
    delattr(value, method)
    with pytest.raises(
        TypeError,
        match=f"^{port} must implement the {protocol} protocol, got .*"
        f": it has no {method}$",
    ):
        build(**{port: value})


@pytest.mark.parametrize(("site", "port"), SITE_PORTS)
def test_an_instance_or_a_duck_typed_object_is_accepted(site: str, port: str) -> None:
    """A real instance, and an object with no base class but callable methods, pass."""
    build, _ = SITES[site]
    cls = PORTS[port][1]
    build(**{port: cls()})
    build(**{port: fake(port)})


def test_add_sink_rejects_a_class_even_beside_another_sink() -> None:
    """add_sink checks its sink itself, also when tee'd with an earlier sink."""
    remove = add_sink(BreakerSpy())
    try:
        with pytest.raises(TypeError, match=r"pass an instance, BreakerSpy\(\)"):
            add_sink(BreakerSpy)  # type: ignore[arg-type]
    finally:
        remove()


# -- hooks ------------------------------------------------------------------

BREAKER_HOOKS: Final = (
    "on_open",
    "on_close",
    "on_half_open",
    "on_success",
    "on_failure",
)


def register(breaker: CircuitBreaker[..., Any], hook: str, callback: object) -> None:
    getattr(breaker, hook)(callback)


@pytest.mark.parametrize("hook", BREAKER_HOOKS)
@pytest.mark.parametrize(
    ("callback", "shown", "why"),
    [
        pytest.param(lambda: None, "<lambda>()", "too many positional arguments"),
        pytest.param(
            lambda breaker, extra: None,
            "<lambda>(breaker, extra)",
            "missing a required argument: 'extra'",
        ),
    ],
    ids=["no-arguments", "two-arguments"],
)
def test_a_breaker_hook_of_the_wrong_arity_is_rejected(
    hook: str, callback: Callable[..., object], shown: str, why: str
) -> None:
    """A breaker hook that cannot take the breaker alone fails when registered."""
    breaker = CircuitBreaker("hooks")
    expected = (
        f"{hook} callback must accept one argument (the breaker), got {shown}: {why}"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        register(breaker, hook, callback)


def test_a_rejected_hook_is_not_registered() -> None:
    """After a rejected registration, firing the hook reports no failure."""
    spy = BreakerSpy()
    breaker = CircuitBreaker("hooks", sink=spy)
    with pytest.raises(TypeError):
        breaker.on_open(lambda: None)  # type: ignore[arg-type,misc]
    breaker.trip()
    assert spy.hook_failures() == []


@pytest.mark.parametrize(
    "callback",
    [
        pytest.param(lambda: None, id="no-arguments"),
        pytest.param(lambda attempt, error: None, id="two-arguments"),
        pytest.param(lambda attempt, error, delay, extra: None, id="four-arguments"),
        pytest.param(lambda attempt, error, *, delay: None, id="delay-keyword-only"),
    ],
)
def test_an_on_retry_hook_of_the_wrong_arity_is_rejected(
    callback: Callable[..., object],
) -> None:
    """An on_retry hook that cannot take (attempt, error, delay) fails at once."""
    policy = RetryPolicy("hooks")
    with pytest.raises(
        TypeError,
        match=re.escape(
            "on_retry callback must accept three arguments (attempt, error, delay),"
            " got "
        ),
    ):
        policy.on_retry(callback)


class Recorder:
    """Callbacks of every shape that fits, recording what they were called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def __call__(self, *args: object) -> None:
        self.calls.append(args)

    def method(self, breaker: object) -> None:
        self.calls.append((breaker,))

    def with_default(self, breaker: object, label: str = "x") -> None:
        self.calls.append((breaker, label))

    def partial_target(self, label: str, breaker: object) -> None:
        self.calls.append((label, breaker))

    async def coroutine(self, breaker: object) -> None:
        self.calls.append((breaker,))


@pytest.mark.parametrize("hook", BREAKER_HOOKS)
def test_breaker_hooks_of_every_fitting_shape_are_accepted(hook: str) -> None:
    """*args, defaults, bound methods, partials, instances and async defs all fit."""
    recorder = Recorder()
    breaker = CircuitBreaker("hooks")
    for callback in (
        recorder,
        recorder.method,
        recorder.with_default,
        functools.partial(recorder.partial_target, "partial"),
        recorder.coroutine,
        lambda *args: recorder.calls.append(args),
    ):
        register(breaker, hook, callback)


def test_fitting_hooks_are_called_with_the_breaker() -> None:
    """A partial and a *args callback registered on on_open get the breaker."""
    recorder = Recorder()
    breaker = CircuitBreaker("hooks")
    breaker.on_open(functools.partial(recorder.partial_target, "partial"))
    breaker.on_open(recorder)
    breaker.trip()
    assert recorder.calls == [("partial", breaker), (breaker,)]


def test_on_retry_hooks_that_fit_are_accepted() -> None:
    """on_retry takes *args, a partial, or three parameters with any names."""
    policy = RetryPolicy("hooks")

    def labelled(label: str, attempt: int, error: Exception, delay: float) -> None:
        pass

    policy.on_retry(lambda *args: None)
    policy.on_retry(functools.partial(labelled, "partial"))
    # mypy cannot type a lambda with one parameter more than the hook's.
    policy.on_retry(lambda number, exc, seconds, extra=None: None)  # type: ignore[misc]


def test_a_callable_without_a_readable_signature_is_accepted() -> None:
    """A builtin whose signature inspect cannot read is trusted, not rejected."""
    try:
        inspect.signature(dir)
    except ValueError:
        pass
    else:  # pragma: no cover - depends on the Python version
        pytest.skip("dir has a readable signature on this Python")
    CircuitBreaker("hooks").on_open(dir)
    RetryPolicy("hooks").on_retry(dir)  # type: ignore[arg-type]


# -- rate windows -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"calls": 0, "minimum_calls": 1}, "RateWindow.calls must be >= 1, got 0"),
        (
            {"calls": 1_000_001},
            (
                "RateWindow.calls must be between 1 and 1_000_000, got 1000001:"
                " a count window keeps one byte per call"
            ),
        ),
        ({"calls": 2**40}, "RateWindow.calls must be between 1 and 1_000_000"),
        ({"calls": 2**63}, "RateWindow.calls must be between 1 and 1_000_000"),
        (
            {"calls": 1_000_000, "minimum_calls": 1_000_001},
            "RateWindow.minimum_calls (1000001) must be <= calls (1000000)",
        ),
        (
            {"seconds": 0},
            (
                "RateWindow.seconds must be between 0.001 (1 ms) and 31_536_000"
                " (a year), got 0: the window is kept in 20 buckets of seconds / 20"
            ),
        ),
        ({"seconds": 5e-324}, "RateWindow.seconds must be between 0.001 (1 ms)"),
        ({"seconds": 1e-310}, "RateWindow.seconds must be between 0.001 (1 ms)"),
        ({"seconds": 0.000_999}, "RateWindow.seconds must be between 0.001 (1 ms)"),
        ({"seconds": 31_536_001}, "and 31_536_000 (a year), got 31536001"),
        ({"seconds": 1e308}, "and 31_536_000 (a year), got 1e+308"),
        ({"seconds": -1}, "RateWindow.seconds must be a finite number >= 0"),
        ({"seconds": math.inf}, "RateWindow.seconds must be a finite number >= 0"),
        ({"seconds": math.nan}, "RateWindow.seconds must be a finite number >= 0"),
        (
            {"calls": 10, "slow_call_rate": 0.5, "slow_call_duration": -1},
            "RateWindow.slow_call_duration must be a finite number >= 0",
        ),
        (
            {"calls": 10, "slow_call_rate": 0.5, "slow_call_duration": math.inf},
            "RateWindow.slow_call_duration must be a finite number >= 0",
        ),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else None,
)
def test_a_window_out_of_bounds_is_rejected_with_the_bound(
    kwargs: dict[str, Any], message: str
) -> None:
    """Each out-of-bounds window field fails at construction, naming field and bound."""
    kwargs.setdefault("failure_rate", 0.5)
    kwargs.setdefault("minimum_calls", 1)
    with pytest.raises(ValueError, match=re.escape(message)):
        RateWindow(**kwargs)


@pytest.mark.parametrize(
    "window",
    [
        {"calls": 1},
        {"calls": 1_000_000},
        {"seconds": 0.001},
        {"seconds": 31_536_000},
        {"seconds": 31_536_000.0},
    ],
    ids=repr,
)
def test_a_window_at_its_bounds_works(window: dict[str, Any]) -> None:
    """The boundary sizes are accepted, and a breaker using them opens on a failure."""
    clock = FakeClock(start=1e6)
    breaker = CircuitBreaker(
        "edge",
        BreakerConfig(trip=RateWindow(minimum_calls=1, failure_rate=1.0, **window)),
        clock=clock,
    )

    def boom() -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        breaker.call_sync(boom)
    assert breaker.state == "open"


# -- jitter -----------------------------------------------------------------


class WildRandom:
    """A faulty RandomSource: every draw answers *value*, whatever range was asked."""

    def __init__(self, value: float) -> None:
        self.value = value

    def uniform(self, a: float, b: float) -> float:
        return self.value


WILD_DRAWS: Final = [1e9, -5.0, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("strategy", list(BackoffStrategy))
@pytest.mark.parametrize("value", WILD_DRAWS, ids=repr)
def test_every_delay_stays_within_max_delay_whatever_the_draw(
    strategy: BackoffStrategy, value: float
) -> None:
    """Draws outside their range never move a delay out of [0, max_delay]."""
    config = RetryConfig(
        max_retries=12, base_delay=0.001, max_delay=0.01, strategy=strategy
    )
    delays = config.delays(random=WildRandom(value))
    assert len(delays) == 12
    assert all(0.0 <= delay <= 0.01 for delay in delays), delays


@pytest.mark.parametrize("strategy", list(BackoffStrategy))
@pytest.mark.parametrize(
    ("value", "fraction"),
    [(1e9, 1.0), (math.inf, 1.0), (-5.0, 0.0), (-math.inf, 0.0), (math.nan, 0.0)],
    ids=repr,
)
def test_a_draw_outside_its_range_is_clamped_to_the_nearer_end(
    strategy: BackoffStrategy, value: float, fraction: float
) -> None:
    """Above the range a draw becomes its top, below it (or NaN) its bottom."""
    config = RetryConfig(
        max_retries=6, base_delay=1.0, max_delay=10.0, strategy=strategy
    )
    assert config.delays(random=WildRandom(value)) == config.delays(
        random=FakeRandom(fraction)
    )


@pytest.mark.parametrize("strategy", list(BackoffStrategy))
def test_a_policy_never_sleeps_past_max_delay_with_a_wild_random(
    strategy: BackoffStrategy,
) -> None:
    """Through a policy, the sleeps and the announced delays stay within max_delay."""
    clock, spy = FakeClock(), RetrySpy()
    policy = RetryPolicy(
        "wild",
        RetryConfig(max_retries=5, base_delay=0.001, max_delay=0.01, strategy=strategy),
        clock=clock,
        sleeper=clock,
        random=WildRandom(1e9),
        sink=spy,
    )
    failures = iter([ConnectionError()] * 5)

    def flaky() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "ok"

    assert policy.call_sync(flaky) == "ok"
    assert len(clock.sleeps) == 5
    assert all(0.0 < sleep <= 0.01 for sleep in clock.sleeps), clock.sleeps
    assert spy.delays("wild") == clock.sleeps
