"""The video study's table (mean ± sample std per experiment, the order gap) and its run order (an experiment that
starts from another's registered model runs after it)."""

from __future__ import annotations

from vlp.benchmarks.video_study import registering_first, table


def run(experiment: str, seed: int, acc1: float, cosine: float) -> dict:
    metrics = {"zeroshot/shapes-video-motion/acc1": acc1, "temporal_order/shapes-video/reversed_cosine": cosine}
    return {"experiment": experiment, "seed": seed, "status": "FINISHED", "metrics": metrics}


def test_the_table_gives_mean_and_sample_std_per_experiment_and_skips_unfinished_runs():
    runs = [run("experiments/video-a.yaml", 0, 0.1, 1.0), run("experiments/video-a.yaml", 1, 0.3, 1.0),
            run("experiments/video-b.yaml", 0, 0.5, 0.998), {"experiment": "experiments/video-c.yaml", "seed": 0, "status": "FAILED"}]
    lines = table(runs).splitlines()
    assert lines[0] == "| experiment | motion acc1 | 1 − reversed cos | seeds |"
    assert lines[2] == "| video-a | 0.200 ± 0.141 | 0.0e+00 | 0,1 |"
    assert lines[3] == "| video-b | 0.500 | 2.0e-03 | 0 |"
    assert len(lines) == 4


def test_an_experiment_starting_from_a_registered_model_runs_after_the_one_registering_it(tmp_path):
    (tmp_path / "a-mov.yaml").write_text("model:\n  arch: video\n  init_from: models:/base-clip@candidate\n")
    (tmp_path / "b-mean.yaml").write_text("model:\n  arch: video\n")
    (tmp_path / "z-base.yaml").write_text("model:\n  arch: clip\nregister:\n  model_name: base-clip\n")
    names = [str(tmp_path / name) for name in ("a-mov.yaml", "b-mean.yaml", "z-base.yaml")]
    assert [path.rsplit("/", 1)[1] for path in registering_first(names)] == ["z-base.yaml", "a-mov.yaml", "b-mean.yaml"]
