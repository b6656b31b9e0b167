"""
Draw the delays of the four backoff strategies, sampled from aiobreakers itself.

Run by the ``plot`` directive in ``docs/retry.rst`` at build time: every dot is
a delay that :meth:`aiobreakers.RetryConfig.delays` returned, drawn from a
seeded :class:`aiobreakers.SystemRandom`, so the picture cannot drift from the
code.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from aiobreakers import BackoffStrategy, RetryConfig, SystemRandom

CALLS = 1500
"""Protected calls sampled per strategy."""
RETRIES = 7
BASE_DELAY = 1.0
MAX_DELAY = 30.0


def sample(strategy: BackoffStrategy) -> list[list[float]]:
    """Return, for each retry k = 1..RETRIES, the delays of CALLS calls."""
    config = RetryConfig(
        max_retries=RETRIES,
        base_delay=BASE_DELAY,
        max_delay=MAX_DELAY,
        strategy=strategy,
    )
    random = SystemRandom(seed=2024)
    calls = [config.delays(random) for _ in range(CALLS)]
    return [list(delays) for delays in zip(*calls, strict=True)]


def draw() -> None:
    """Draw one panel per strategy: every delay, its median, and the cap."""
    figure, axes = plt.subplots(
        2, 2, figsize=(9, 6.4), sharex=True, sharey=True, layout="constrained"
    )
    spread = SystemRandom(seed=1)
    retries = range(1, RETRIES + 1)
    caps = [min(MAX_DELAY, BASE_DELAY * 2 ** (k - 1)) for k in retries]
    for axis, strategy in zip(axes.flat, BackoffStrategy, strict=True):
        per_retry = sample(strategy)
        for k, delays in zip(retries, per_retry, strict=True):
            xs = [k + spread.uniform(-0.28, 0.28) for _ in delays]
            axis.scatter(xs, delays, s=3, alpha=0.12, color="tab:blue", linewidths=0)
        medians = [sorted(delays)[len(delays) // 2] for delays in per_retry]
        axis.plot(retries, medians, "o-", color="tab:orange", label="median")
        axis.step(
            retries, caps, where="mid", ls="--", color="grey", label="cap (exponential)"
        )
        axis.set_title(f"BackoffStrategy.{strategy.name}")
        axis.grid(alpha=0.3)
    for axis in axes[1]:
        axis.set_xlabel("retry k")
    for axis in axes[:, 0]:
        axis.set_ylabel("delay before retry k (s)")
    axes[0, 0].legend(loc="upper left")
    figure.suptitle(
        f"{CALLS} calls per strategy: base_delay={BASE_DELAY}s, max_delay={MAX_DELAY}s"
    )


draw()
