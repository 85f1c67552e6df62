"""`vlp runs list` on a tracking server reads MLflow's REST API without importing MLflow, and says the same as
MLflow's client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vlp.platform.tracking.headline import headline_tag


def test_rest_listing_equals_the_client_s_and_imports_no_mlflow(mlflow_server):
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from vlp.platform.tracking import queries

    client = MlflowClient(mlflow_server.url)
    experiment = client.create_experiment("rest-listing")
    for index in range(3):
        run = client.create_run(experiment, run_name=f"r{index}", tags={**headline_tag(["zeroshot/pets/acc1"]), "vlp.team": "default"})
        client.log_batch(run.info.run_id, metrics=[Metric("zeroshot/pets/acc1", index / 4, 0, 0), Metric("train/loss", 1.5, 0, 3)])
        client.set_terminated(run.info.run_id)
    names = {e.experiment_id: e.name for e in client.search_experiments()}
    expected = [queries._client_summary(run, names) for run in client.search_runs(list(names), max_results=2, order_by=["attributes.start_time DESC"])]
    assert queries.recent_runs(limit=2, tracking_uri=mlflow_server.url) == expected
    assert queries.recent_runs("rest-listing", 5, tracking_uri=mlflow_server.url)[2]["headline"] == {"zeroshot/pets/acc1": 0.0}
    script = ("import json, sys; from vlp.platform.tracking.queries import recent_runs; "
              "runs = recent_runs('rest-listing', 5, tracking_uri=sys.argv[1]); print(json.dumps([len(runs), 'mlflow' in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", script, mlflow_server.url], capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout) == [3, False], result.stderr


def test_an_unknown_experiment_and_an_unreachable_server_are_one_line(mlflow_server):
    import pytest

    from vlp.platform.errors import VlpUserError
    from vlp.platform.tracking import queries

    with pytest.raises(VlpUserError, match="--experiment 'nope': no such experiment"):
        queries.recent_runs("nope", tracking_uri=mlflow_server.url)
    with pytest.raises(VlpUserError, match=r"MLflow at http://127.0.0.1:9/ is unreachable"):
        queries.recent_runs(tracking_uri="http://127.0.0.1:9/")


def test_a_running_vlp_ui_serves_the_local_listings_the_same_as_the_client(tmp_path, monkeypatch, vlp_home):
    """`vlp runs list` and `vlp models list` ask a live `vlp ui` over the local store instead of opening it; the rows
    are the client's; once the server is gone they open the store again."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from vlp.benchmarks.loopback import free_port, start_service
    from vlp.platform.registry.queries import model_versions
    from vlp.platform.registry.versions import tag_version
    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking import queries
    from vlp.platform.tracking.local_store import prepare_tracking_store
    from vlp.platform.tracking.ui_server import serving_url

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = default_tracking_uri()
    prepare_tracking_store(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("ui-listing", artifact_location=(tmp_path / "artifacts").as_uri())
    client.create_registered_model("ui-clip")
    for index in range(3):
        run = client.create_run(experiment, run_name=f"r{index}", tags={**headline_tag(["zeroshot/pets/acc1"]), "vlp.team": "default"})
        client.log_batch(run.info.run_id, metrics=[Metric("zeroshot/pets/acc1", index / 4, 0, 0)])
        client.set_terminated(run.info.run_id)
        version = client.create_model_version("ui-clip", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        tag_version("ui-clip", str(version.version), {"zeroshot/pets/acc1": index / 4}, [], "hash", "commit", "candidate", uri)
    client.set_registered_model_alias("ui-clip", "champion", "1")
    from_client = (queries.recent_runs(limit=5), model_versions())
    assert serving_url(uri) is None
    port = free_port()
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    ui = start_service([str(Path(sys.executable).parent / "vlp"), "ui", "--port", str(port)], f"http://127.0.0.1:{port}", "/health", env, tmp_path / "ui.log")
    try:
        assert serving_url(uri) == f"http://127.0.0.1:{port}", ((vlp_home / "ui.json").read_text(), uri, (tmp_path / "ui.log").read_text()[-1500:])
        assert (queries.recent_runs(limit=5), model_versions()) == from_client
        assert [v["aliases"] for v in from_client[1]] == [["champion"], [], ["candidate"]]
        script = ("import json, sys; from vlp.platform.tracking.queries import recent_runs; from vlp.platform.registry.queries import model_versions; "
                  "print(json.dumps([len(recent_runs()), len(model_versions()), 'mlflow' in sys.modules]))")
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
        assert json.loads(result.stdout) == [3, 3, False], result.stderr
    finally:
        ui.stop()
    assert serving_url(uri) is None
    assert queries.recent_runs(limit=5) == from_client[0]
