"""The background MLflow tracker against a real server behind a proxy that can take it away: a bounded
queue that drops the oldest points and says how many, and no duplicates when a resumed run logs again."""

from __future__ import annotations

import logging
import time

import pytest
from faults import FaultProxy
from jobs import environ


@pytest.fixture(autouse=True)
def credentials(monkeypatch, planted):
    """The basic-auth server of the other reliability tests; the tracker reads its credentials from the environment."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", planted["MLFLOW_TRACKING_PASSWORD"])


@pytest.fixture
def proxied_mlflow(auth_mlflow):
    proxy = FaultProxy(target_port=int(auth_mlflow.url.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


@pytest.fixture
def run_id(auth_mlflow):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(auth_mlflow.url)
    experiment = client.get_experiment_by_name("tracker") or client.get_experiment(client.create_experiment("tracker"))
    return client.create_run(experiment.experiment_id).info.run_id


def steps(auth_mlflow, run_id: str, key: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    return sorted(metric.step for metric in MlflowClient(auth_mlflow.url).get_metric_history(run_id, key))


def test_overflow_while_unreachable_drops_the_oldest_warns_with_counts_and_delivers_the_rest(auth_mlflow, proxied_mlflow, run_id, caplog):
    from vlp.platform.tracking.mlflow_tracker import MlflowTracker

    proxied_mlflow.down("tracking server unreachable")
    with environ(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"), caplog.at_level(logging.WARNING, logger="vlp.platform.tracking.mlflow_tracker"):
        tracker = MlflowTracker(run_id, proxied_mlflow.url, max_buffered=10, flush_seconds=0.2)
        for step in range(1, 26):
            tracker.log_metrics({"train/loss": 1.0 / step}, step=step)  # returns at once: the server is away
        tracker.set_tags({"vlp.parameters": "12"})
        time.sleep(1.0)
        proxied_mlflow.up()
        tracker.close(timeout=60)
    assert tracker.dropped == 15
    assert steps(auth_mlflow, run_id, "train/loss") == list(range(16, 26))  # the newest 10, each once
    messages = [record.getMessage() for record in caplog.records]
    assert any("1 oldest points dropped so far" in message for message in messages)
    assert any("10 oldest points dropped so far" in message for message in messages)
    assert any("15 metric points dropped in all" in message for message in messages)
    assert any(message.startswith("MLflow delivery failed") for message in messages)
    from mlflow.tracking import MlflowClient

    tags = MlflowClient(auth_mlflow.url).get_run(run_id).data.tags
    assert tags["vlp.tracker.dropped_points"] == "15" and tags["vlp.parameters"] == "12"


def test_a_resumed_tracker_sends_no_step_twice(auth_mlflow, run_id):
    from vlp.platform.tracking.mlflow_tracker import MlflowTracker

    first = MlflowTracker(run_id, auth_mlflow.url, flush_seconds=0.1)
    for step in range(1, 6):
        first.log_metrics({"train/loss": float(step)}, step=step)
    first.close(timeout=60)
    # The checkpoint of step 3 carried points 2..3 as pending; the resumed trainer requeues them and logs 4.. again.
    second = MlflowTracker(run_id, auth_mlflow.url, flush_seconds=0.1)
    second.requeue([("train/loss", 2.0, 1, 2), ("train/loss", 3.0, 1, 3)])
    for step in range(4, 9):
        second.log_metrics({"train/loss": float(step)}, step=step)
    second.close(timeout=60)
    assert steps(auth_mlflow, run_id, "train/loss") == list(range(1, 9))


def test_a_request_the_server_refuses_is_dropped_not_retried_forever(auth_mlflow, run_id, caplog):
    from vlp.platform.tracking.mlflow_tracker import MlflowTracker

    tracker = MlflowTracker(run_id, auth_mlflow.url, flush_seconds=0.1)
    tracker.log_params({"model.parameters": "1"})
    tracker.close(timeout=60)
    with caplog.at_level(logging.WARNING, logger="vlp.platform.tracking.mlflow_tracker"):
        tracker = MlflowTracker(run_id, auth_mlflow.url, flush_seconds=0.1)
        tracker.log_params({"model.parameters": "2"})  # params are immutable: MLflow answers INVALID_PARAMETER_VALUE
        tracker.log_metrics({"train/loss": 0.5}, step=1)
        started = time.monotonic()
        tracker.close(timeout=60)
    assert time.monotonic() - started < 30 and tracker.rejected == 1
    assert steps(auth_mlflow, run_id, "train/loss") == [1]
    assert any("MLflow refused" in record.getMessage() for record in caplog.records)
