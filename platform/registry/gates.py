"""Metric gates such as `zeroshot/shapes/acc1 >= 0.8`, checked against a version's metrics."""

from __future__ import annotations

import operator
from dataclasses import dataclass

from vlp.platform.spec.registration import GATE_PATTERN

OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


@dataclass(frozen=True)
class GateResult:
    gate: str
    metric: str
    value: float | None
    passed: bool

    def describe(self) -> str:
        if self.value is None:
            return f"{self.gate}: metric {self.metric} was not recorded"
        return f"{self.gate}: {self.metric} = {self.value:.4f} ({'pass' if self.passed else 'FAIL'})"


def check_gates(gates: list[str], metrics: dict[str, float]) -> list[GateResult]:
    results = []
    for gate in gates:
        match = GATE_PATTERN.match(gate)
        if match is None:
            raise ValueError(f"gate {gate!r} is not of the form 'metric >= number'")
        metric, op, threshold = match["metric"], match["op"], float(match["value"])
        value = metrics.get(metric)
        results.append(GateResult(gate, metric, value, value is not None and OPERATORS[op](value, threshold)))
    return results
