"""`sweep:` — run the experiment several times over a grid or random draws of some of its fields, and pick the
best trial by one metric."""

from __future__ import annotations

import itertools
import math
import random
from typing import Literal

from pydantic import Field, field_validator, model_validator

from vlp.platform.spec.base import Section


class Distribution(Section):
    """A field's values: `values` (a list), `range` ([start, stop, step], stop included), or for random search
    `uniform` / `log_uniform` ([low, high])."""

    values: tuple | None = None
    range: tuple[float, float, float] | None = None
    uniform: tuple[float, float] | None = None
    log_uniform: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Distribution":
        given = [name for name in ("values", "range", "uniform", "log_uniform") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of values, range, uniform, log_uniform")
        if self.values is not None and not self.values:
            raise ValueError("values: an empty list (give at least one value)")
        if self.range is not None and (self.range[2] <= 0 or self.range[1] < self.range[0]):
            raise ValueError("range: [start, stop, step] needs start <= stop and step > 0")
        if self.log_uniform is not None and not 0 < self.log_uniform[0] < self.log_uniform[1]:
            raise ValueError("log_uniform: [low, high] needs 0 < low < high")
        if self.uniform is not None and not self.uniform[0] < self.uniform[1]:
            raise ValueError("uniform: [low, high] needs low < high")
        return self

    @property
    def continuous(self) -> bool:
        return self.uniform is not None or self.log_uniform is not None

    def grid(self) -> list:
        if self.values is not None:
            return list(self.values)
        start, stop, step = self.range
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        whole = all(float(value).is_integer() for value in self.range)
        return [int(start + index * step) if whole else start + index * step for index in range(count)]

    def draw(self, rng: random.Random):
        if self.uniform is not None:
            return rng.uniform(*self.uniform)
        if self.log_uniform is not None:
            low, high = self.log_uniform
            return math.exp(rng.uniform(math.log(low), math.log(high)))
        return rng.choice(self.grid())


class SweepSection(Section):
    """Trials of the experiment over some of its fields, as one pipeline (vlp.pipelines.sweep_pipeline): one parent
    MLflow run, one child run per trial, the best child (by `metric` and `goal`) tagged, and the trials' table
    printed and logged on the parent."""

    method: Literal["grid", "random"] = "grid"
    """`grid`: every combination of the listed values; `random`: `trials` independent draws."""
    parameters: dict[str, Distribution]
    """Field path (such as `train.lr`) -> a list of values, or a distribution: `{values: [...]}`, `{range: [start,
    stop, step]}`, and for `random` also `{uniform: [low, high]}` or `{log_uniform: [low, high]}`."""
    trials: int | None = Field(None, ge=1, le=10_000)
    """`random`: how many draws (required); `grid`: at most this many combinations (default: all)."""
    parallelism: int = Field(1, ge=1, le=64)
    """Trials that run at the same time (the `parallelism` of the sweep pipeline's ParallelFor, here and on a cluster)."""
    metric: str
    """The metric that ranks the trials, such as `zeroshot/shapes/acc1`."""
    goal: Literal["maximize", "minimize"] = "maximize"
    """Whether a larger or a smaller `metric` is better."""
    seed: int = 0
    """Seed of the random draws."""

    @field_validator("parameters", mode="before")
    @classmethod
    def _lists_are_values(cls, parameters):
        if not isinstance(parameters, dict):
            return parameters
        if not parameters:
            raise ValueError("name at least one field to sweep, such as `train.lr: [0.001, 0.003]`")
        return {path: {"values": value} if isinstance(value, (list, tuple)) else value for path, value in parameters.items()}

    @model_validator(mode="after")
    def _fits_the_method(self) -> "SweepSection":
        if self.method == "random" and self.trials is None:
            raise ValueError("method random needs trials (how many draws)")
        if self.method == "grid":
            continuous = [path for path, distribution in self.parameters.items() if distribution.continuous]
            if continuous:
                raise ValueError(f"parameters.{continuous[0]}: a grid needs values or a range, not a continuous distribution")
        return self

    def assignments(self) -> list[dict[str, object]]:
        """Each trial's field values, in order."""
        paths = list(self.parameters)
        if self.method == "grid":
            combos = itertools.product(*(self.parameters[path].grid() for path in paths))
            chosen = list(itertools.islice(combos, self.trials)) if self.trials else list(combos)
            return [dict(zip(paths, combo)) for combo in chosen]
        rng = random.Random(self.seed)
        return [{path: self.parameters[path].draw(rng) for path in paths} for _ in range(self.trials)]
