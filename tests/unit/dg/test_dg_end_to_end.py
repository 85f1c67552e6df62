"""A tiny leave-one-domain-out study through the real pipeline steps: the workload runs under torchrun via TorchX,
MLflow gets a parent run with a child per held-out domain and method, and the table comes out; the pipeline
compiles with a ParallelFor over the held-out domains."""

from __future__ import annotations

import json

import yaml

from vlp.platform.spec import spec_from_dict

STUDY = """
name: tiny-dg
workload: dg
data: {shapes: {image_size: 32, shard_size: 64}}
train: {max_steps: 1}
resources: {nodes: 1, procs_per_node: 1}
dg:
  samples: 96
  domains: [cartoon, sketch]
  pretrained: shapes-rn-tiny
  steps: 2
  eval_every: 1
  batch_size: 2
"""


def test_tiny_study_runs_end_to_end_with_child_runs_and_a_table(vlp_home, monkeypatch):
    from mlflow.tracking import MlflowClient

    from vlp.pipelines.steps import dg_data, dg_pretrained, dg_report, dg_train, start_run
    from vlp.platform.profiles import local_runtime

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the workers' torch: see the `one_thread` fixture in tests/conftest.py
    spec = spec_from_dict(yaml.safe_load(STUDY))
    runtime = local_runtime()
    spec_json, runtime_json = json.dumps(spec.model_dump(mode="json", by_alias=True)), runtime.model_dump_json()

    run_id = start_run.run(spec_json, runtime_json)
    dataset_uri = dg_data.run(spec_json, runtime_json, run_id)
    assert dg_data.held_out_domains(spec_json, runtime_json, run_id, dataset_uri) == ["cartoon", "sketch"]
    assert dg_pretrained.run(spec_json, runtime_json, run_id) == "shapes-rn-tiny"
    results = [dg_train.run(spec_json, runtime_json, domain) for domain in ("cartoon", "sketch")]
    table = dg_report.run(spec_json, runtime_json, run_id, results)

    assert "| Algorithm | cartoon | sketch | Avg |" in table
    for method in ("Zero-shot", "ERM", "InDiGo"):
        assert f"| {method} |" in table
    client = MlflowClient(runtime.tracking_uri)
    metrics = client.get_run(run_id).data.metrics
    for method in ("zeroshot", "erm", "indigo"):
        assert 0.0 <= metrics[f"dg/{method}/avg"] <= 1.0
        assert {f"dg/{method}/cartoon", f"dg/{method}/sketch"} <= set(metrics)
    children = client.search_runs([client.get_run(run_id).info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'")
    assert sorted((c.data.tags["vlp.dg.held_out"], c.data.tags["vlp.dg.method"]) for c in children) == [
        (domain, method) for domain in ("cartoon", "sketch") for method in ("erm", "indigo", "zeroshot")
    ]
    assert all(child.info.status == "FINISHED" for child in children)
    erm_child = next(c for c in children if c.data.tags["vlp.dg.method"] == "erm")
    assert {"trial0/val_acc", "trial0/test_acc", "test_acc", "val_acc"} <= set(erm_child.data.metrics)
    artifacts = {item.path for folder in ("dg", "plots") for item in client.list_artifacts(run_id, folder)}
    assert {"dg/table.md", "dg/results.json", "plots/dg-per-domain.png"} <= artifacts

    # A retried step finds its stored results and its child runs: no second job, no duplicate children.
    assert json.loads(dg_train.run(spec_json, runtime_json, "sketch")) == json.loads(results[1])
    again = client.search_runs([client.get_run(run_id).info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'")
    assert len(again) == 6


def test_dg_pipeline_compiles_with_a_parallel_for_over_held_out_domains(tmp_path, vlp_home):
    from vlp.pipelines.compile import compile_to_file
    from vlp.platform.profiles import local_runtime

    spec = spec_from_dict(yaml.safe_load(STUDY))
    document = yaml.safe_load(compile_to_file(spec, local_runtime(), tmp_path / "dg.yaml").read_text())
    assert document["pipelineInfo"]["name"] == "vlp-dg"
    tasks = document["root"]["dag"]["tasks"]["exit-handler-1"]
    inner = document["components"][tasks["componentRef"]["name"]]["dag"]["tasks"]
    assert {"start-run", "dg-data", "dg-domains", "dg-pretrained", "dg-report"} <= set(inner)
    loop = next(task for name, task in inner.items() if name.startswith("for-loop"))
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("dg-domains-Output")
