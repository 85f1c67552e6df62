"""vlp bench memory: per-process state measured on gloo processes, FSDP's half at two processes, the estimate."""

from __future__ import annotations

import pytest

from vlp.benchmarks.sharded_memory import run_sharded_memory


def test_fsdp_holds_half_the_state_per_parameter_and_the_estimate_follows():
    report = run_sharded_memory("shapes-vit-micro", [2], budget_gib=1.0)
    rows = {row["parallelism"]: row for row in report.rows}
    # fp32 parameters, gradients and AdamW's two moments: 16 bytes a parameter, each process's half under FSDP.
    assert rows["ddp"]["bytes_per_parameter"] == pytest.approx(16.0, rel=1e-3)
    assert rows["fsdp"]["bytes_per_parameter"] == pytest.approx(8.0, rel=0.01)
    assert report.summary["fsdp_largest_parameters_in_budget"] == pytest.approx(2 * report.summary["ddp_largest_parameters_in_budget"], rel=0.01)
    # 1 GiB holds the state of no open_clip ViT under DDP (ViT-B-32: 151M x 16 bytes).
    assert report.summary["ddp_largest_open_clip_config_in_budget"] is None
