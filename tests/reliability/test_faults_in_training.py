"""Faults during training, with the real services on loopback: one worker SIGKILLed mid-epoch, the S3 endpoint
gone for 15 s (cut in the middle of a checkpoint upload), the MLflow server (basic-auth app) stopped for at least 20 s,
until the restarted workers have written a checkpoint without it.

One 2-worker job suffers all three in turn; an identical job beside it runs undisturbed. The faulty job must
restart, resume and finish at the target step in the same MLflow run, every metric step must arrive exactly
once, and its final weights, optimizer state and metric values must be bitwise equal to the undisturbed job's
(CPU, gloo, one thread per worker: every operation is deterministic, so no tolerance is needed).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sys
import threading
import time
import uuid

import pytest
import torch
from faults import FaultProxy
from jobs import environ, metric_history, service_env, start_training, worker_pid

MAX_STEPS, CHECKPOINT_EVERY, LOG_EVERY = 80, 10, 5
S3_OUTAGE_SECONDS, MLFLOW_OUTAGE_SECONDS = 15.0, 20.0
KILL_AFTER_STEP = 20
LOGGED_STEPS = list(range(LOG_EVERY, MAX_STEPS + 1, LOG_EVERY))


def experiment(train_uri: str, storage_root: str) -> dict:
    return {
        "name": "faults", "team": "tests", "seed": 7, "storage_root": storage_root,
        "data": {"source": "shards", "train": train_uri},
        "model": {"preset": "shapes-vit-micro"},
        "train": {"batch_size": 16, "max_steps": MAX_STEPS, "warmup_steps": 5, "lr": 0.002,
                  "checkpoint_every": CHECKPOINT_EVERY, "log_every": LOG_EVERY},
        "resources": {"nodes": 2, "procs_per_node": 1, "max_restarts": 2},
        "register": {"enabled": False},
    }


class LatestWatcher(threading.Thread):
    """Reads `latest.json` straight from moto (not through the faulty proxy) every 0.2 s; each time it changes,
    loads the checkpoint it points to, so a partial checkpoint ever being "latest" would be caught."""

    def __init__(self, s3, bucket: str, checkpoints_prefix: str):
        super().__init__(daemon=True)
        self.s3, self.bucket, self.key = s3, bucket, f"{checkpoints_prefix}/latest.json"
        self.step, self.seen, self.failures, self.read_errors = 0, [], [], []
        self.stopped = threading.Event()

    def run(self) -> None:
        last = None
        while not self.stopped.is_set():
            try:
                manifest = json.loads(self.s3.get_object(Bucket=self.bucket, Key=self.key)["Body"].read())
            except self.s3.exceptions.NoSuchKey:
                manifest = None
            except Exception as err:  # noqa: BLE001 - a failed poll is retried; it says nothing about the checkpoint
                self.read_errors.append(f"{type(err).__name__}: {err}")
                manifest = None
            if manifest and manifest != last:
                last = manifest
                key = manifest["uri"].split("/", 3)[3]
                try:
                    state = torch.load(io.BytesIO(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()), weights_only=True)
                    assert state["step"] == manifest["step"]
                    self.seen.append(manifest["step"])
                except Exception as err:  # noqa: BLE001 - any failure to load is what this watcher exists to catch
                    self.failures.append(f"{manifest['uri']}: {type(err).__name__}: {err}")
                self.step = manifest["step"]
            time.sleep(0.2)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def faults(tmp_path_factory, s3_server, s3_bucket, s3, auth_mlflow, shards_in_s3, planted, runs_at_once):
    # `runs_at_once`: four CPU-bound `vlp run` go on in the background while this scenario mostly waits.
    from vlp.platform.runtime import RuntimeContext

    work = tmp_path_factory.mktemp("faults")
    started = time.monotonic()
    timeline = {}
    prefix = f"faults-{uuid.uuid4().hex[:8]}"
    proxy = FaultProxy(target_port=int(s3_server.url.rsplit(":", 1)[1]))
    jobs, runtimes = {}, {}
    for name, tracking_uri, s3_url in (
        ("reference", f"sqlite:///{work / 'reference-mlflow.db'}", s3_server.url),
        ("faulty", auth_mlflow.url, proxy.url),
    ):
        spec = experiment(shards_in_s3, f"s3://{s3_bucket}/{prefix}/{name}")
        runtime = RuntimeContext(storage_root=spec["storage_root"], tracking_uri=tracking_uri, run_key=uuid.uuid4().hex, git_commit="test")
        env = {**service_env(planted, s3_url, tracking_uri, work / f"home-{name}"), "VLP_STORAGE_RETRY_SECONDS": "120"}
        runtimes[name] = runtime
        jobs[name] = start_training(spec, runtime.model_dump_json(), shards_in_s3, env, work / name)

    # Fault 1: the S3 endpoint dies in the middle of uploading the step-10 checkpoint and stays away.
    # A PUT: the whole object, or (a checkpoint of 16 MB or more) one of its parts, never the multipart start.
    proxy.cut_on(rb"PUT [^ ]*/checkpoints/step-00000010-", S3_OUTAGE_SECONDS)
    run_ids = {name: job.wait_for_line("RUN ", 300) for name, job in jobs.items()}
    faulty = jobs["faulty"]
    timeline["runs opened"] = time.monotonic() - started
    watcher = LatestWatcher(s3, s3_bucket, f"{prefix}/faulty/runs/{run_ids['faulty']}/checkpoints")
    watcher.start()

    # Fault 2: SIGKILL rank 0's worker mid-epoch (16 steps per epoch), after the step-20 checkpoint.
    wait_until(lambda: watcher.step >= KILL_AFTER_STEP, 400, f"checkpoint of step {KILL_AFTER_STEP}")
    os.kill(worker_pid(run_ids["faulty"], 0), signal.SIGKILL)
    timeline["worker killed"] = time.monotonic() - started

    # Fault 3: stop the MLflow server while the workers restart, so the resumed job starts and trains without it.
    auth_mlflow.stop()
    timeline["mlflow stopped"] = time.monotonic() - started
    step_at_stop = watcher.step
    time.sleep(MLFLOW_OUTAGE_SECONDS)
    # The restarted workers need their own start-up time, longer on a busy CPU: the outage lasts until they checkpoint.
    wait_until(lambda: watcher.step > step_at_stop, 300, f"a checkpoint after step {step_at_stop} with MLflow down")
    step_before_restart = watcher.step
    auth_mlflow.restart("/health", timeout=300)  # the basic-auth app starts slowly on a busy CPU
    timeline["mlflow back"] = time.monotonic() - started

    codes = {name: job.wait(600) for name, job in jobs.items()}
    timeline["jobs done"] = time.monotonic() - started
    print("fault timeline (s):", {key: round(value, 1) for key, value in timeline.items()}, file=sys.stderr)
    watcher.stopped.set()
    watcher.join(5)
    proxy.close()
    yield {"jobs": jobs, "codes": codes, "run_ids": run_ids, "runtimes": runtimes, "watcher": watcher, "proxy": proxy,
           "step_at_stop": step_at_stop, "step_before_restart": step_before_restart, "s3": s3, "planted": planted}


def clients(faults):
    from mlflow.tracking import MlflowClient

    return {name: MlflowClient(runtime.tracking_uri) for name, runtime in faults["runtimes"].items()}


def final_state(faults, name: str) -> dict:
    uri = faults["jobs"][name].wait_for_line("CHECKPOINT ", 1)
    bucket, key = uri[len("s3://"):].split("/", 1)
    return torch.load(io.BytesIO(faults["s3"].get_object(Bucket=bucket, Key=key)["Body"].read()), weights_only=True)


def test_job_survives_every_fault_and_finishes_at_the_target_step(faults):
    for name, code in faults["codes"].items():
        assert code == 0, f"{name} job failed:\n" + "\n".join(faults["jobs"][name].lines[-80:])
    assert final_state(faults, "faulty")["step"] == MAX_STEPS


def test_killed_worker_is_restarted_and_resumes_in_the_same_run(faults):
    output = faults["jobs"]["faulty"].output
    assert "exitcode: -9" in output  # torchrun saw the SIGKILL
    resumed = [int(step) for step in re.findall(r"resumed from checkpoint at step (\d+)", output)]
    assert len(resumed) == 2 and resumed[0] == resumed[1] >= KILL_AFTER_STEP, resumed  # both ranks, same step
    assert "resumed from checkpoint" not in faults["jobs"]["reference"].output
    with environ(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=faults["planted"]["MLFLOW_TRACKING_PASSWORD"]):
        client = clients(faults)["faulty"]
        runs = client.search_runs([client.get_experiment_by_name("faults").experiment_id],
                                  filter_string=f"tags.`vlp.run_key` = '{faults['runtimes']['faulty'].run_key}'")
    assert [run.info.run_id for run in runs] == [faults["run_ids"]["faulty"]]


def test_every_metric_step_arrives_once_with_the_uninterrupted_values(faults):
    with environ(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=faults["planted"]["MLFLOW_TRACKING_PASSWORD"]):
        histories = {
            name: {key: metric_history(client, faults["run_ids"][name], key) for key in ("train/loss", "train/lr", "train/logit_scale", "data/skipped_samples")}
            for name, client in clients(faults).items()
        }
        tags = clients(faults)["faulty"].get_run(faults["run_ids"]["faulty"]).data.tags
    for key, points in histories["faulty"].items():
        assert [step for step, _ in points] == LOGGED_STEPS, key  # no gap, no duplicate
        assert points == histories["reference"][key], key  # bitwise equal values
    assert all(value == 0 for _, value in histories["faulty"]["data/skipped_samples"])
    assert int(tags["vlp.parameters"]) > 0  # params and tags travel through the same queue


def test_final_weights_and_optimizer_state_are_bitwise_equal_to_the_uninterrupted_job(faults):
    faulty, reference = final_state(faults, "faulty"), final_state(faults, "reference")
    assert faulty["model"].keys() == reference["model"].keys()
    for key, tensor in reference["model"].items():
        assert torch.equal(faulty["model"][key], tensor), key
    for index, state in reference["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(faulty["optimizer"]["state"][index][name], value), (index, name)
    assert faulty["data"] == reference["data"]  # the data position, consumer by consumer


def test_s3_outage_during_a_checkpoint_upload_costs_time_and_never_exposes_a_partial_checkpoint(faults):
    outages = faults["proxy"].outages()
    cut = [span for span in outages if "step-00000010-" in span[2]]
    assert len(cut) == 1 and cut[0][2].startswith("cut during PUT "), outages
    assert cut[0][1] - cut[0][0] >= S3_OUTAGE_SECONDS
    output = faults["jobs"]["faulty"].output
    assert re.search(r"(write|upload) s3://\S+/checkpoints/step-00000010-\S+\.pt: .*retrying", output)
    watcher = faults["watcher"]
    assert watcher.failures == []
    assert watcher.seen[0] == CHECKPOINT_EVERY and watcher.seen[-1] == MAX_STEPS
    assert watcher.seen == sorted(watcher.seen)


def test_training_goes_on_while_mlflow_is_down_and_the_queue_drains_when_it_returns(faults):
    # The restarted job kept writing checkpoints while the server was stopped.
    assert faults["step_before_restart"] > faults["step_at_stop"]
    assert "MLflow delivery failed" in faults["jobs"]["faulty"].output
