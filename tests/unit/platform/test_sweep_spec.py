"""`sweep:`: grid and random trials over field paths; every bad input is one line naming it."""

from __future__ import annotations

import math

import pytest

from vlp.platform.errors import SpecError
from vlp.platform.spec import spec_from_dict
from vlp.platform.spec.loading import trial_specs

BASE = {"name": "exp", "train": {"max_steps": 10}}
METRIC = "zeroshot/shapes/acc1"


def sweep(**section):
    return spec_from_dict({**BASE, "sweep": {"metric": METRIC, **section}}, source="exp.yaml")


def test_a_grid_is_every_combination_and_each_trial_is_the_experiment_with_those_values():
    spec = sweep(parameters={"train.lr": [0.001, 0.01], "train.warmup_steps": {"range": [0, 20, 10]}, "model.arch": ["clip"]})
    trials = trial_specs(spec)
    assert [values for values, _ in trials] == [
        {"train.lr": lr, "train.warmup_steps": warmup, "model.arch": "clip"} for lr in (0.001, 0.01) for warmup in (0, 10, 20)]
    assert all(trial.sweep is None and trial.train.max_steps == 10 for _, trial in trials)
    assert [(trial.train.lr, trial.train.warmup_steps) for _, trial in trials][4] == (0.01, 10)
    assert len(trial_specs(sweep(parameters={"train.lr": [1e-3, 1e-2, 1e-1]}, trials=2))) == 2  # a cap on the grid


def test_random_draws_are_seeded_and_within_their_distributions():
    section = dict(method="random", trials=20, seed=7, parameters={"train.lr": {"log_uniform": [1e-4, 1e-2]}, "train.weight_decay": {"uniform": [0, 0.2]},
                                                                    "train.batch_size": [32, 64]})
    first = [values for values, _ in trial_specs(sweep(**section))]
    assert first == [values for values, _ in trial_specs(sweep(**section))]
    assert all(1e-4 <= v["train.lr"] <= 1e-2 and 0 <= v["train.weight_decay"] <= 0.2 and v["train.batch_size"] in (32, 64) for v in first)
    # log-uniform: about half the draws below the geometric mean
    assert 4 <= sum(v["train.lr"] < math.sqrt(1e-4 * 1e-2) for v in first) <= 16


@pytest.mark.parametrize("section, message", [
    (dict(parameters={"train.lrr": [1]}), "exp.yaml: sweep.parameters.train.lrr: no such field in the experiment"),
    (dict(parameters={"train.lr": []}), "values: an empty list"),
    (dict(parameters={}), "sweep.parameters: name at least one field to sweep"),
    (dict(parameters={"train.lr": [0.1]}, parallelism=0), "sweep.parallelism: Input should be greater than or equal to 1"),
    (dict(parameters={"train.lr": [-1.0]}), "exp.yaml: sweep trial 1: train.lr: Input should be greater than 0"),
    (dict(parameters={"train.lr": [0.1]}, metric="zs/acc"), "sweep.metric: 'zs/acc' is not a metric"),
    (dict(parameters={"train.lr": {"uniform": [0.1, 0.2]}}), "a grid needs values or a range"),
    (dict(method="random", parameters={"train.lr": [0.1]}), "method random needs trials"),
])
def test_bad_sweeps_are_one_line_naming_the_field(section, message):
    with pytest.raises(SpecError) as error:
        sweep(**{"metric": METRIC, **section})
    assert message in str(error.value) and "\n" not in str(error.value)
