"""`vlp runs list` on a tracking server reads MLflow's REST API without importing MLflow, and says the same as
MLflow's client."""

from __future__ import annotations

import json
import subprocess
import sys

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
