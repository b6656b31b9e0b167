"""
Bad input: every configuration field and constructor argument, fuzzed.

A valid configuration is drawn from the config space, then one field is
replaced with a wrong type or an out-of-range value. Construction must fail
with a ValueError or TypeError whose message names the field: never another
exception, never an object. (An int too large for a float is an infinite
number of seconds: rejected like ``math.inf``.)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Final

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiobreakers import (
    BackoffStrategy,
    BreakerConfig,
    CircuitBreaker,
    RetryConfig,
    RetryPolicy,
)

# Values of every other kind, for fields that want something else.
ANYTHING: Final = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.tuples(st.integers()),
    st.just(object()),
    st.just(ValueError),
    st.just(KeyboardInterrupt),
    st.just(ValueError("an instance")),
    st.complex_numbers(allow_nan=False, allow_infinity=False),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 10**400, -(10**400)]),
)
BAD_COUNT: Final = st.one_of(
    ANYTHING.filter(lambda v: isinstance(v, bool) or not isinstance(v, int)),
    st.integers(max_value=0),
)


def good_seconds(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 0 and (isinstance(value, int) or math.isfinite(value))


BAD_SECONDS: Final = st.one_of(
    ANYTHING.filter(lambda v: not good_seconds(v) or v == 10**400),
    st.floats(max_value=-1e-300),
    st.integers(max_value=-1),
)
BAD_EXCEPTIONS: Final = st.one_of(
    ANYTHING.filter(lambda v: not isinstance(v, tuple)),
    st.tuples(ANYTHING.filter(lambda v: v is not ValueError)),
    st.tuples(st.just(ValueError), st.sampled_from([KeyboardInterrupt, int, "x"])),
)

GOOD_SECONDS: Final = st.one_of(
    st.floats(min_value=0, max_value=1e6), st.integers(min_value=0, max_value=10**6)
)
GOOD_EXCEPTIONS: Final = st.lists(
    st.sampled_from([ValueError, KeyError, OSError, TimeoutError]), max_size=3
).map(tuple)

BREAKER_FIELDS: Final[dict[str, st.SearchStrategy[Any]]] = {
    "failure_threshold": BAD_COUNT,
    "success_threshold": BAD_COUNT,
    "half_open_max_calls": BAD_COUNT,
    "recovery_timeout": BAD_SECONDS,
    "included_exceptions": BAD_EXCEPTIONS,
    "excluded_exceptions": BAD_EXCEPTIONS,
}
RETRY_FIELDS: Final[dict[str, st.SearchStrategy[Any]]] = {
    "max_retries": st.one_of(
        ANYTHING.filter(lambda v: isinstance(v, bool) or not isinstance(v, int)),
        st.integers(max_value=-1),
    ),
    "base_delay": BAD_SECONDS,
    "max_delay": BAD_SECONDS,
    "strategy": ANYTHING | st.sampled_from([s.value for s in BackoffStrategy]),
    "retryable_exceptions": BAD_EXCEPTIONS,
    "non_retryable_exceptions": BAD_EXCEPTIONS,
}
# None is every port's and argument's "use the default".
SOMETHING: Final = ANYTHING.filter(lambda v: v is not None)
NOT_A_PORT: Final = SOMETHING | st.just(lambda: 0.0)
BREAKER_ARGS: Final[dict[str, st.SearchStrategy[Any]]] = {
    "name": ANYTHING.filter(lambda v: not isinstance(v, str)) | st.just(""),
    "config": SOMETHING | st.builds(RetryConfig),
    "fallback": SOMETHING.filter(lambda v: not callable(v)),
    "clock": NOT_A_PORT,
    "sink": NOT_A_PORT,
}
RETRY_ARGS: Final[dict[str, st.SearchStrategy[Any]]] = {
    "name": BREAKER_ARGS["name"],
    "config": SOMETHING | st.builds(BreakerConfig),
    "clock": NOT_A_PORT,
    "sleeper": NOT_A_PORT,
    "random": NOT_A_PORT,
    "sink": NOT_A_PORT,
}


@st.composite
def good_breaker_config(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "failure_threshold": draw(st.integers(1, 10**6)),
        "success_threshold": draw(st.integers(1, 10**6)),
        "half_open_max_calls": draw(st.integers(1, 10**6)),
        "recovery_timeout": draw(GOOD_SECONDS),
        "included_exceptions": draw(GOOD_EXCEPTIONS),
        "excluded_exceptions": draw(GOOD_EXCEPTIONS),
    }


@st.composite
def good_retry_config(draw: st.DrawFn) -> dict[str, Any]:
    base = draw(GOOD_SECONDS)
    return {
        "max_retries": draw(st.integers(0, 100)),
        "base_delay": base,
        "max_delay": base + draw(GOOD_SECONDS),
        "strategy": draw(st.sampled_from(BackoffStrategy)),
        "retryable_exceptions": draw(GOOD_EXCEPTIONS),
        "non_retryable_exceptions": draw(GOOD_EXCEPTIONS),
    }


def one_bad(
    good: st.SearchStrategy[dict[str, Any]],
    fields: dict[str, st.SearchStrategy[Any]],
) -> st.SearchStrategy[tuple[dict[str, Any], str]]:
    """A good set of arguments with one of them replaced by a bad value."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
        arguments = draw(good)
        field = draw(st.sampled_from(sorted(fields)))
        arguments[field] = draw(fields[field])
        return arguments, field

    return build()


def assert_rejected(build: Any, arguments: dict[str, Any], field: str) -> None:
    with pytest.raises((TypeError, ValueError)) as caught:
        build(**arguments)
    assert field in str(caught.value), f"{caught.value!r} does not name {field!r}"


@settings(max_examples=300, deadline=None)
@given(one_bad(good_breaker_config(), BREAKER_FIELDS))
@example(({"recovery_timeout": 10**400}, "recovery_timeout"))
def test_bad_breaker_config_field(case: tuple[dict[str, Any], str]) -> None:
    assert_rejected(BreakerConfig, *case)


@settings(max_examples=300, deadline=None)
@given(one_bad(good_retry_config(), RETRY_FIELDS))
@example(({"max_delay": 10**400}, "max_delay"))
def test_bad_retry_config_field(case: tuple[dict[str, Any], str]) -> None:
    arguments, field = case
    if field == "base_delay" and arguments["max_delay"] is not None:
        # Keep max_delay >= a good base_delay out of the way: only base_delay
        # is wrong here.
        arguments["max_delay"] = 10**6 * 3
    assert_rejected(RetryConfig, arguments, field)


@settings(max_examples=200, deadline=None)
@given(one_bad(good_breaker_config(), BREAKER_FIELDS))
def test_bad_field_through_replace(case: tuple[dict[str, Any], str]) -> None:
    arguments, field = case
    bad = arguments.pop(field)
    config = BreakerConfig(**arguments)
    assert_rejected(lambda **c: dataclasses.replace(config, **c), {field: bad}, field)


@settings(max_examples=200, deadline=None)
@given(
    one_bad(
        st.fixed_dictionaries({"name": st.text(min_size=1, max_size=5)}), BREAKER_ARGS
    )
)
def test_bad_circuit_breaker_argument(case: tuple[dict[str, Any], str]) -> None:
    arguments, field = case
    name = arguments.pop("name")
    assert_rejected(lambda **a: CircuitBreaker(name, **a), arguments, field)


@settings(max_examples=200, deadline=None)
@given(
    one_bad(
        st.fixed_dictionaries({"name": st.text(min_size=1, max_size=5)}), RETRY_ARGS
    )
)
def test_bad_retry_policy_argument(case: tuple[dict[str, Any], str]) -> None:
    arguments, field = case
    name = arguments.pop("name")
    assert_rejected(lambda **a: RetryPolicy(name, **a), arguments, field)


def test_max_delay_below_base_delay_names_max_delay() -> None:
    assert_rejected(RetryConfig, {"base_delay": 2.0, "max_delay": 1.0}, "max_delay")
