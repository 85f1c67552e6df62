"""Four `vlp run` at once on one machine, in one state directory (one SQLite store, one storage root, the same
dataset and the same registered model), then two promotions at once. Credentials planted in the
environment must not show up in anything the runs wrote. (The runs are started in the background by the
first fixture that asks for `runs_at_once`; see background_runs.py.)"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import pytest
from background_runs import MODEL, RUNS, STEPS
from jobs import VLP, files_under, find_secrets

@pytest.fixture(scope="module")
def concurrent(runs_at_once):
    return runs_at_once.results()


def store(concurrent):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{concurrent['home'] / 'mlflow.db'}")


def outcomes(concurrent) -> list[dict]:
    return [json.loads(document) for document in concurrent["documents"]]


def test_four_runs_at_once_all_finish_in_their_own_run(concurrent):
    for log, code in zip(concurrent["logs"], concurrent["codes"]):
        assert code == 0, log[-4000:]
    results = outcomes(concurrent)
    run_ids = {result["run_id"] for result in results}
    assert len(run_ids) == RUNS and all(result["status"] == "FINISHED" for result in results)
    client = store(concurrent)
    for run_id in run_ids:
        assert sorted(metric.step for metric in client.get_metric_history(run_id, "train/loss")) == list(range(1, STEPS + 1))
        checkpoints = concurrent["home"] / "storage" / "runs" / run_id / "checkpoints"
        assert json.loads((checkpoints / "latest.json").read_text())["step"] == STEPS
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert sorted(int(version.version) for version in versions) == list(range(1, RUNS + 1))
    assert {version.run_id for version in versions} == run_ids


def test_the_shared_dataset_was_generated_once(concurrent):
    client = store(concurrent)
    generated = [result["run_id"] for result in outcomes(concurrent)
                 if "data/generate_samples_per_second" in client.get_run(result["run_id"]).data.metrics]
    assert len(generated) == 1
    datasets = [path for path in (concurrent["home"] / "storage" / "datasets").iterdir() if path.is_dir()]
    assert len(datasets) == 2  # training and held-out


def test_nothing_the_runs_wrote_holds_a_planted_credential(concurrent, planted):
    blobs = files_under(concurrent["home"])
    blobs.update({f"vlp run #{index} output": (document + log).encode()
                  for index, (document, log) in enumerate(zip(concurrent["documents"], concurrent["logs"]))})
    # TorchX's local scheduler keeps each job's logs in a temporary directory of its own.
    for log_dir in Path(tempfile.gettempdir()).glob("torchx_*"):
        if log_dir.stat().st_mtime >= concurrent["started"]:
            blobs.update(files_under(log_dir))
    client = store(concurrent)
    for result in outcomes(concurrent):
        run = client.get_run(result["run_id"])
        blobs[f"run {run.info.run_id} params/tags"] = json.dumps([run.data.params, run.data.tags, list(run.data.metrics)]).encode()
    assert len(blobs) > 50
    assert find_secrets(planted, blobs) == []


def test_two_promotions_at_once_leave_the_alias_and_its_audit_in_agreement(concurrent):
    results = {}

    def promote(version: str) -> None:
        results[version] = subprocess.run([VLP, "promote", MODEL, version, "--alias", "champion"], env=concurrent["env"],
                                          capture_output=True, text=True, timeout=300)

    threads = [threading.Thread(target=promote, args=(version,)) for version in ("1", "2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for version, result in results.items():
        assert result.returncode == 0, result.stderr
    assert_alias_and_audit_agree(store(concurrent), {"1", "2"})


def test_racing_promotions_in_many_rounds_always_settle(concurrent):
    from vlp.platform.registry.versions import promote

    client = store(concurrent)
    for round_ in range(4):
        alias = f"race{round_}"
        barrier = threading.Barrier(2)
        errors = []

        def racer(version: str) -> None:
            barrier.wait()
            try:
                promote(MODEL, version, alias, tracking_uri=f"sqlite:///{concurrent['home'] / 'mlflow.db'}")
            except Exception as err:  # noqa: BLE001 - collected and asserted below
                errors.append(err)

        threads = [threading.Thread(target=racer, args=(version,)) for version in ("3", "4")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert_alias_and_audit_agree(client, {"3", "4"}, alias)


def test_settling_repairs_an_audit_left_behind_by_an_interleaving(concurrent):
    """The interleaving the settle loop exists for: B moved the alias after A wrote the model's audit."""
    from vlp.platform.registry.versions import settle_alias_audit

    client = store(concurrent)
    alias = f"interleaved-{uuid.uuid4().hex[:6]}"
    client.set_model_version_tag(MODEL, "2", f"vlp.promoted.{alias}", json.dumps({"version": "2", "by": "b"}))
    client.set_registered_model_alias(MODEL, alias, "2")
    client.set_registered_model_tag(MODEL, f"vlp.alias.{alias}", json.dumps({"version": "1", "by": "a"}))  # A's stale write
    assert settle_alias_audit(client, MODEL, alias) == "2"
    assert_alias_and_audit_agree(client, {"2"}, alias)


def assert_alias_and_audit_agree(client, candidates: set[str], alias: str = "champion") -> None:
    holder = str(client.get_model_version_by_alias(MODEL, alias).version)
    audit = json.loads(client.get_registered_model(MODEL).tags[f"vlp.alias.{alias}"])
    assert holder in candidates and audit["version"] == holder
    assert json.loads(client.get_model_version(MODEL, holder).tags[f"vlp.promoted.{alias}"]) == audit
