"""Medians, ratios and the alternating run order every comparison uses."""

from __future__ import annotations

import statistics
from typing import Sequence


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """Median, min and max of the repeats (None when there are none)."""
    values = [value for value in values if value is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is zero."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def alternating(names: Sequence[str], repeats: int) -> list[tuple[int, str]]:
    """(repeat, name) in the order A B … A B …: each repeat runs every variant once, in the same order."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    return [(repeat, name) for repeat in range(repeats) for name in names]


def steady_rate(step_seconds: Sequence[float], samples_per_step: int, skip_steps: int) -> float | None:
    """Samples per second between the end of step `skip_steps` and the end of the last step.

    `step_seconds[i]` is when step i finished (any common origin). Skipping the first steps leaves start-up
    (imports, worker start, compilation, the first batches) out, so the figure is the steady state.
    """
    if skip_steps < 0:
        raise ValueError("skip_steps must be >= 0")
    if len(step_seconds) < skip_steps + 2:
        return None
    elapsed = step_seconds[-1] - step_seconds[skip_steps]
    if elapsed <= 0:
        return None
    return (len(step_seconds) - 1 - skip_steps) * samples_per_step / elapsed


def cpu_rate(step_cpu_seconds_per_process: Sequence[Sequence[float]], samples_per_step: int, skip_steps: int) -> float | None:
    """Samples per CPU-second over the same steady-state window, with the CPU time of every process summed."""
    spent, steps = 0.0, None
    for stamps in step_cpu_seconds_per_process:
        if len(stamps) < skip_steps + 2:
            return None
        spent += stamps[-1] - stamps[skip_steps]
        steps = len(stamps) - 1 - skip_steps if steps is None else min(steps, len(stamps) - 1 - skip_steps)
    if steps is None or spent <= 0:
        return None
    return steps * samples_per_step / spent
