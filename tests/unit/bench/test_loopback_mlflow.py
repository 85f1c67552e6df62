"""The tracking benchmark's MLflow server: answers on 127.0.0.1 while the block runs, gone after it."""

from __future__ import annotations

import urllib.request

import pytest

from vlp.benchmarks.loopback import loopback_mlflow


def test_server_takes_runs_while_up_and_is_gone_after(tmp_path):
    from mlflow.tracking import MlflowClient

    with loopback_mlflow(tmp_path) as tracking_uri:
        assert tracking_uri.startswith("http://127.0.0.1:")
        client = MlflowClient(tracking_uri=tracking_uri)
        run = client.create_run(client.create_experiment("bench"))
        client.log_metric(run.info.run_id, "loss", 0.5, step=1)
        assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}
    with pytest.raises(OSError):
        urllib.request.urlopen(tracking_uri + "/health", timeout=2)
