"""The claim studies' arms are valid experiments, and their tables are mean ± sample std over finished seeds."""

from __future__ import annotations

import pytest

from vlp.benchmarks.claim_study import FUSION_BUDGET, STUDIES, Arm, Study, cell, table
from vlp.platform.spec.loading import load_spec


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_arm_is_a_valid_experiment_with_its_overrides(name):
    for arm in STUDIES[name].arms:
        overrides = ["seed=2", *arm.overrides] + (["model.init_from=/nowhere/step-00000001.pt"] if arm.init_from else [])
        spec = load_spec(arm.experiment, overrides)
        assert spec.seed == 2 and spec.train.threads_per_proc == 1, arm.name
    keys = [arm.key(seed) for study in STUDIES.values() for arm in (*study.borrowed, *study.arms) for seed in (0, 1)]
    names = {arm.name: arm.key(0) for study in STUDIES.values() for arm in (*study.borrowed, *study.arms)}
    assert len(set(keys)) == 2 * len(names)  # one run per (arm, seed), shared where studies share an arm


def test_fusion_arms_run_on_the_small_budget_unless_asked_for_their_own():
    for arm in STUDIES["fusion"].arms:
        assert set(FUSION_BUDGET) <= set(arm.overrides)
        assert load_spec(arm.experiment, arm.overrides).train.max_steps == 120


def test_table_reports_mean_and_sample_std_of_finished_seeds_only():
    arm = Arm("a", "x.yaml")
    study = Study(arms=(arm,), columns=(("acc", "zeroshot/shapes/acc1"), ("gap", "missing")))
    runs = {
        arm.key(0): {"status": "FINISHED", "metrics": {"zeroshot/shapes/acc1": 0.5}},
        arm.key(1): {"status": "FINISHED", "metrics": {"zeroshot/shapes/acc1": 0.7}},
        arm.key(2): {"status": "FAILED", "metrics": {"zeroshot/shapes/acc1": 0.0}},
    }
    assert table(study, runs, [0, 1, 2]).splitlines()[-1] == "| a | 0.600 ± 0.141 | – | 0,1 |"
    assert cell([0.25]) == "0.250" and cell([None]) == "–"
