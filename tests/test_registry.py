"""aiobreakers.registry: every live breaker and policy, weakly held, thread-safe."""

from __future__ import annotations

import functools
import gc
import json
import os
import threading
import tracemalloc
from typing import TYPE_CHECKING, Any

import pytest

import aiobreakers
from aiobreakers import (
    BackoffStrategy,
    BreakerConfig,
    CircuitBreaker,
    Registry,
    RetryConfig,
    RetryPolicy,
    registry,
)

if TYPE_CHECKING:
    from aiobreakers.testing import FakeClock
    from conftest import ForkChildren


class ThrottledError(Exception):
    """An application's own error, for its qualified name in the config."""


def boom() -> None:
    raise ConnectionError("down")


def keep(_kept: object, _breaker: object) -> None:
    """A hook that holds on to something."""


def retry_after(error: Exception) -> float | None:
    """A delay_from function: what the server asked for."""
    return getattr(error, "retry_after", None)


class RetryAfter:
    """A delay_from object: named by its class."""

    def __call__(self, error: Exception) -> float | None:
        return retry_after(error)


def named(prefix: str, snapshot: list[Any]) -> list[Any]:
    """The entries of a snapshot list whose name starts with *prefix*."""
    return [entry for entry in snapshot if entry["name"].startswith(prefix)]


# -- what it holds ---------------------------------------------------------------


def test_the_registry_is_public_and_one() -> None:
    assert aiobreakers.registry is registry
    assert isinstance(registry, Registry)
    assert repr(registry).startswith("<aiobreakers.registry: ")


def test_every_breaker_and_policy_is_known_from_the_moment_it_is_made() -> None:
    breaker = CircuitBreaker("reg-known")
    policy = RetryPolicy("reg-known-retry")
    assert breaker in registry.breakers()
    assert policy in registry.policies()
    assert registry.breakers("reg-known") == [breaker]
    assert registry.policies("reg-known-retry") == [policy]
    assert registry.breakers("reg-nobody") == []


def test_breakers_and_policies_come_oldest_first() -> None:
    made = [CircuitBreaker("reg-order") for _ in range(5)]
    policies = [RetryPolicy("reg-order") for _ in range(5)]
    assert registry.breakers("reg-order") == made
    assert registry.policies("reg-order") == policies


def test_dropped_breakers_and_policies_disappear() -> None:
    breaker = CircuitBreaker("reg-dropped")
    policy = RetryPolicy("reg-dropped")
    # A breaker in a reference cycle (its hook holds it) goes too, once the
    # garbage collector has run.
    breaker.on_open(functools.partial(keep, breaker))
    del breaker, policy
    gc.collect()
    assert registry.breakers("reg-dropped") == []
    assert registry.policies("reg-dropped") == []


def test_dead_references_do_not_pile_up() -> None:
    """Making and dropping breakers forever holds bounded memory."""
    live = len(registry.breakers()) + len(registry.policies())
    cycles = max(40_000, 20 * (live + 64))

    def churn(count: int) -> None:
        for _ in range(count):
            CircuitBreaker("reg-churn")
            RetryPolicy("reg-churn")

    churn(1_000)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        churn(cycles)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Without sweeping, two weak references (~90 bytes each) would stay per
    # cycle; swept, at most about twice the live members are dead at once.
    assert after - before < cycles * 180 / 4
    assert registry.breakers("reg-churn") == []


def test_registration_is_exact_under_threads() -> None:
    """Breakers made on many threads at once are all known; readers never fail."""
    threads, each = 8, 400
    start = threading.Barrier(threads + 1)
    made: list[list[CircuitBreaker[..., Any]]] = [[] for _ in range(threads)]
    policies: list[list[RetryPolicy]] = [[] for _ in range(threads)]
    done = threading.Event()
    reads: list[int] = []

    def make(index: int) -> None:
        start.wait()
        for number in range(each):
            made[index].append(CircuitBreaker(f"reg-thread-{index}-{number}"))
            policies[index].append(RetryPolicy(f"reg-thread-{index}-{number}"))

    def read() -> None:
        start.wait()
        while not done.is_set():
            reads.append(len(registry.breakers()) + len(registry.snapshot()))

    workers = [threading.Thread(target=make, args=(i,)) for i in range(threads)]
    reader = threading.Thread(target=read)
    for thread in [*workers, reader]:
        thread.start()
    for thread in workers:
        thread.join()
    done.set()
    reader.join()

    known = {id(breaker) for breaker in registry.breakers()}
    assert all(id(breaker) in known for batch in made for breaker in batch)
    known_policies = {id(policy) for policy in registry.policies()}
    assert all(id(policy) in known_policies for batch in policies for policy in batch)
    assert reads


# -- find ------------------------------------------------------------------------


def test_find_returns_the_one_breaker_of_a_name() -> None:
    breaker = CircuitBreaker("reg-find-payments")
    assert registry.find("reg-find-payments") is breaker
    policy = RetryPolicy("reg-find-retry")
    assert registry.find_policy("reg-find-retry") is policy


def test_find_says_what_there_is_when_nothing_has_the_name() -> None:
    kept = CircuitBreaker("reg-find-known")
    with pytest.raises(LookupError) as info:
        registry.find("reg-find-nope")
    message = str(info.value)
    assert message.startswith("no live circuit breaker is called 'reg-find-nope'; ")
    assert "'reg-find-known'" in message
    assert kept.name == "reg-find-known"
    with pytest.raises(LookupError, match="no live retry policy is called 'nope'"):
        registry.find_policy("nope")


def test_find_refuses_a_name_several_breakers_share() -> None:
    twins = [CircuitBreaker("reg-find-twin") for _ in range(3)]
    with pytest.raises(LookupError) as info:
        registry.find("reg-find-twin")
    assert str(info.value) == (
        "3 live circuit breakers are called 'reg-find-twin': use"
        " aiobreakers.registry.breakers('reg-find-twin') to get them all"
    )
    assert registry.breakers("reg-find-twin") == twins
    policies = [RetryPolicy("reg-find-twin") for _ in range(2)]
    with pytest.raises(LookupError, match="2 live retry policies are called"):
        registry.find_policy("reg-find-twin")
    assert registry.policies("reg-find-twin") == policies


def test_find_lists_at_most_twenty_names() -> None:
    crowd = [CircuitBreaker(f"reg-crowd-{i:03}") for i in range(30)]
    with pytest.raises(LookupError) as info:
        registry.find("reg-crowd-none")
    message = str(info.value)
    assert message.count("'") <= 2 * 21  # twenty names, and the one asked for
    assert "more)" in message
    assert len(crowd) == 30


# -- snapshot --------------------------------------------------------------------


def test_snapshot_is_every_metric_as_json(clock: FakeClock) -> None:
    """What a health endpoint returns: json.dumps takes it, and it round-trips."""
    breaker = CircuitBreaker("reg-snap-db", BreakerConfig(failure_threshold=1))
    with pytest.raises(ConnectionError):
        breaker.call_sync(boom)
    policy = RetryPolicy(
        "reg-snap-retry",
        RetryConfig(
            max_retries=1,
            base_delay=0,
            max_delay=0,
            strategy=BackoffStrategy.EXPONENTIAL,
            retryable_exceptions=(ConnectionError, ThrottledError),
            non_retryable_exceptions=(PermissionError,),
        ),
    )
    with pytest.raises(ConnectionError):
        policy.call_sync(boom)

    snapshot = registry.snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert set(snapshot) == {"breakers", "policies"}
    assert named("reg-snap-", snapshot["breakers"]) == [breaker.get_metrics()]
    [metrics] = named("reg-snap-", snapshot["policies"])
    assert metrics == policy.get_metrics()
    assert metrics["total_exhausted"] == 1
    assert metrics["config"]["strategy"] == "exponential"
    assert metrics["config"]["retryable_exceptions"] == [
        "builtins.ConnectionError",
        f"{__name__}.ThrottledError",
    ]
    assert metrics["config"]["non_retryable_exceptions"] == ["builtins.PermissionError"]


def test_snapshot_is_sorted_by_name_and_keeps_twins_oldest_first() -> None:
    first = CircuitBreaker("reg-sort-b")
    middle = CircuitBreaker("reg-sort-a")
    second = CircuitBreaker("reg-sort-b")
    second.trip()
    entries = named("reg-sort-", registry.snapshot()["breakers"])
    assert [(e["name"], e["state"]) for e in entries] == [
        ("reg-sort-a", "closed"),
        ("reg-sort-b", "closed"),
        ("reg-sort-b", "open"),
    ]
    assert (first.state, middle.state) == ("closed", "closed")


def test_snapshot_reads_the_state_as_any_read_does(clock: FakeClock) -> None:
    """An open circuit past its timeout is half-open in the snapshot."""
    breaker = CircuitBreaker("reg-lazy", BreakerConfig(recovery_timeout=5))
    breaker.trip()
    clock.advance(5)
    [metrics] = named("reg-lazy", registry.snapshot()["breakers"])
    assert metrics["state"] == "half_open"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (RetryConfig(), {"strategy": "full_jitter", "retryable_exceptions": []}),
        (
            RetryConfig(retryable_exceptions=(ThrottledError, TimeoutError)),
            {
                "retryable_exceptions": [
                    f"{__name__}.ThrottledError",
                    "builtins.TimeoutError",
                ]
            },
        ),
        (
            RetryConfig(retry_on_result=lambda result: result is None),
            {"retry_on_result": f"{__name__}.<lambda>"},
        ),
        (
            RetryConfig(delay_from=retry_after),
            {"delay_from": f"{__name__}.retry_after"},
        ),
        (
            RetryConfig(delay_from=RetryAfter()),
            {"delay_from": f"{__name__}.RetryAfter"},
        ),
    ],
)
def test_every_retry_config_is_json(
    config: RetryConfig, expected: dict[str, object]
) -> None:
    """Exception classes, the strategy and functions become plain strings."""
    metrics = RetryPolicy("reg-config", config).get_metrics()
    assert json.loads(json.dumps(metrics)) == metrics
    assert metrics["config"].items() >= expected.items()


def test_a_breaker_snapshot_is_json(clock: FakeClock) -> None:
    breaker = CircuitBreaker("reg-json")
    breaker.trip()
    assert json.loads(json.dumps(breaker.get_metrics())) == breaker.get_metrics()


# -- fork ------------------------------------------------------------------------

fork_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
# Forking a process with threads is what prefork servers do; CPython 3.12+
# warns about it.
threads_and_fork = pytest.mark.filterwarnings(
    "ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning"
)


@fork_only
@threads_and_fork
def test_a_child_forked_while_breakers_are_made_can_use_the_registry(
    fork_children: ForkChildren,
) -> None:
    """The registry's lock is renewed in a child: no deadlock, nothing lost."""
    parent = CircuitBreaker("reg-fork-parent")
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            CircuitBreaker("reg-fork-churn")
            registry.breakers()

    hammer = threading.Thread(target=churn)
    hammer.start()
    try:

        def child() -> bool:
            mine = CircuitBreaker("reg-fork-child")
            json.dumps(registry.snapshot())
            return registry.find("reg-fork-parent") is parent and (
                registry.find("reg-fork-child") is mine
            )

        statuses = fork_children(child, 20)
    finally:
        stop.set()
        hammer.join()
    assert statuses == [0] * 20
