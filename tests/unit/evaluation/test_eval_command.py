"""`vlp eval` from the command line: JSON per task, plots, an MLflow run; bad input is one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess

from colour_toy import write_shards
from services import VLP


def run_vlp(*args, cwd):
    # One intra-op thread, as in-process tests use (the `one_thread` fixture in tests/conftest.py): the model is tiny and the cores shared.
    return subprocess.run([VLP, *args], cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)


def test_eval_writes_results_plots_and_an_mlflow_run(tmp_path, vlp_home):
    data = write_shards(tmp_path / "toy", 24)
    out = tmp_path / "out"
    result = run_vlp("eval", "shapes-rn-tiny", str(data), "--label-field", "colour", "--domain-field", "style", "--templates", str(write_templates(tmp_path)), "-o", str(out), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    tasks = {r["task"] for r in report["results"]}
    assert tasks == {"zeroshot_classification", "zeroshot_retrieval", "linear_probe", "modality_gap", "domain_accuracy"}
    assert report["skipped"]["zeroshot_segmentation"] == "the model has no patch–text similarity maps"
    assert set(report["skipped"]) == {"zeroshot_segmentation", "vqa", "itm_rerank", "visual_grounding"}
    for uri, result in zip(report["files"], report["results"]):
        document = json.loads(open(uri).read())
        assert document == result and document["model"] == "shapes-rn-tiny" and document["dataset"] == "toy" and document["pretrained"] == ""
        assert document["num_images"] > 0
    assert len(report["plots"]) == 4 and all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for p in report["plots"])

    from mlflow.tracking import MlflowClient

    from vlp.platform.state import default_tracking_uri

    client = MlflowClient(default_tracking_uri())
    run = client.get_run(report["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["vlp.eval.dataset"] == "toy"
    assert 0.0 <= run.data.metrics["zeroshot/toy/acc1"] <= 1.0 and "linear_probe/toy/lp_acc1" in run.data.metrics
    artifacts = {item.path for folder in ("plots", "results") for item in client.list_artifacts(run.info.run_id, folder)}
    assert "plots/toy-confusion-matrix.png" in artifacts and "results/toy__shapes-rn-tiny_en_linear_probe.json" in artifacts


def write_templates(tmp_path):
    path = tmp_path / "templates.txt"
    path.write_text("a {} square\na drawing of a {} square\n")
    return path


def test_eval_bad_input_is_one_line(tmp_path, vlp_home):
    result = run_vlp("eval", "shapes-rn-tiny", str(tmp_path / "nowhere"), "--no-track", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "no dataset found" in result.stderr
    result = run_vlp("eval", "shapes-rn-tiny", str(tmp_path), "--task", "bogus", cwd=tmp_path)
    assert result.returncode == 2 and "unknown task" in result.stderr


def test_eval_reads_clip_benchmarks_retrieval_layout_and_counts_every_caption(tmp_path, vlp_home):
    from clip_benchmark_data import captions_of, write_retrieval

    data = write_retrieval(tmp_path / "wds_toy-captions", 10)
    result = run_vlp("eval", "shapes-rn-tiny", str(data), "--task", "retrieval", "--dataset", "wds/toy/captions", "--no-track", "-o", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (only,) = json.loads(result.stdout)["results"]
    assert (only["task"], only["dataset"], only["num_images"], only["num_captions"]) == ("zeroshot_retrieval", "wds/toy/captions", 10, sum(len(captions_of(i)) for i in range(10)))
    assert (tmp_path / "out" / "toy_captions__shapes-rn-tiny_en_zeroshot_retrieval.json").is_file()


def test_eval_on_a_clip_benchmark_folder_without_classnames_names_the_file(tmp_path, vlp_home):
    from clip_benchmark_data import write_classification

    data = write_classification(tmp_path / "wds_toy", 6)
    (data / "classnames.txt").unlink()
    result = run_vlp("eval", "shapes-rn-tiny", str(data), "--no-track", "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and f"{data}/classnames.txt: missing" in result.stderr
    assert not (tmp_path / "out").exists()


def test_eval_on_an_image_that_does_not_decode_names_it_and_writes_nothing(tmp_path, vlp_home):
    import numpy as np
    from PIL import Image

    for name in ("circle", "square"):
        (tmp_path / "data" / name).mkdir(parents=True)
        Image.fromarray(np.full((40, 60, 3), 200, dtype=np.uint8)).save(tmp_path / "data" / name / "0.jpg")
    (tmp_path / "data" / "square" / "1.jpg").write_bytes(b"not a jpeg")
    result = run_vlp("eval", "shapes-rn-tiny", str(tmp_path / "data"), "--task", "zeroshot", "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "data: image square/1.jpg: not a decodable image" in result.stderr
    assert not (tmp_path / "out").exists()
