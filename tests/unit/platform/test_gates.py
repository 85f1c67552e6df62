from __future__ import annotations

from vlp.platform.registry.gates import check_gates


def test_gates_pass_fail_and_missing_metric():
    metrics = {"zeroshot/shapes/acc1": 0.85, "loss": 0.3}
    results = check_gates(["zeroshot/shapes/acc1 >= 0.8", "loss < 0.2", "retrieval/x == 1"], metrics)
    assert [r.passed for r in results] == [True, False, False]
    assert "0.8500 (pass)" in results[0].describe()
    assert "FAIL" in results[1].describe()
    assert "was not recorded" in results[2].describe()
