"""One writer per run, with real `vlp` processes on this machine (local storage, MLflow on SQLite):

1. `vlp run` SIGKILLed with its whole process group in the middle of training: the TorchX job it launched (in
   sessions of their own) stops within seconds, then two `vlp run --resume` started at once: one finishes the
   run, the other is refused in one line naming the holder. Every metric step arrives once and the final weights
   are bitwise equal to an undisturbed run's.
2. The train step retried while its job runs (a second attempt of the step for the same run): it attaches to the
   job instead of launching another and returns the same checkpoint.
3. A node of a 2-node job that never comes back: the launch fails within the rendezvous timeout naming the
   missing node, and nothing is left running.

Each scenario prints its timeline (seconds from its start) to stderr; run with -s to see them.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
import yaml
from jobs import PYTHON, VLP, HERE, metric_history, run_processes, start

STEPS, CHECKPOINT_EVERY, LOG_EVERY, KILL_AFTER_STEP = 40, 5, 5, 10
LOGGED_STEPS = list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
ORPHAN_DEADLINE_SECONDS = 30
RENDEZVOUS_TIMEOUT = 15


def experiment(name: str, storage_root: Path) -> dict:
    return {
        "name": name, "team": "tests", "seed": 5, "storage_root": str(storage_root),
        "data": {"shapes": {"train_samples": 96, "eval_samples": 32, "shard_size": 16}},
        "model": {"preset": "shapes-vit-micro"},
        # One thread per worker: every operation is deterministic, so weights compare bitwise.
        "train": {"batch_size": 8, "max_steps": STEPS, "warmup_steps": 2, "checkpoint_every": CHECKPOINT_EVERY,
                  "log_every": LOG_EVERY, "threads_per_proc": 1},
        "resources": {"nodes": 1, "procs_per_node": 1},
        "eval": {"batch_size": 32, "zeroshot": False, "retrieval": False, "linear_probe": False, "segmentation": False,
                 "modality_gap": False, "per_domain": False, "plots": False},
        "register": {"enabled": False},
    }


def local_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "VLP_HOME": str(home), "PYTHONSAFEPATH": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def latest_step(store: Path) -> tuple[str | None, int]:
    """(run id, step) of the newest checkpoint manifest under the storage root."""
    for manifest in glob.glob(str(store / "runs" / "*" / "checkpoints" / "latest.json")):
        try:
            return Path(manifest).parts[-3], json.loads(Path(manifest).read_text())["step"]
        except (OSError, ValueError):
            continue
    return None, 0


def job_records(home: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((home / "jobs").glob("*.json"))]


def job_processes(token: str) -> list[int]:
    from vlp.platform.launch.local_jobs import job_processes as find

    return find(token)


def wait_until(condition, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def final_weights(store: Path, run_id: str) -> dict:
    from vlp.platform.layout import RunLayout
    from vlp.workloads.train.checkpoint import Checkpointer

    return Checkpointer(RunLayout(str(store), run_id).checkpoints).load_latest()


def undisturbed_weights(store: Path, run_id: str, root: Path) -> dict:
    """The same experiment trained without interruption in this process, on the dataset the run used."""
    from vlp.platform.layout import RunLayout
    from vlp.platform.spec import spec_from_dict
    from vlp.platform.tracking.protocol import NullTracker
    from vlp.workloads.data.shards import list_shards
    from vlp.workloads.train.trainer import PretrainTrainer, TrainInputs

    spec = spec_from_dict(json.loads((store / "runs" / run_id / "spec.json").read_text()))
    (dataset,) = [manifest.parent for manifest in (store / "datasets").glob("*/manifest.json")
                  if json.loads(manifest.read_text())["samples"] == spec.data.shapes.train_samples]
    layout = RunLayout(str(root), "undisturbed")
    PretrainTrainer(spec, TrainInputs(layout=layout, train_shards=list_shards(str(dataset)), tracker_factory=NullTracker)).train()
    return final_weights(root, "undisturbed")


@pytest.fixture(scope="module")
def killed_then_resumed_twice(tmp_path_factory):
    work = tmp_path_factory.mktemp("owner-killed")
    home, store = work / "home", work / "store"
    path = work / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment("owner-killed", store)))
    env = local_env(home)
    started = time.monotonic()
    timeline = {}

    first = start([VLP, "run", str(path), "--json"], env, work)
    run_id, step = wait_until(lambda: (lambda found: found if found[1] >= KILL_AFTER_STEP else None)(latest_step(store)), 600,
                              f"checkpoint of step {KILL_AFTER_STEP}\n" + "\n".join(first.lines[-40:]))
    timeline["training"] = time.monotonic() - started
    (record,) = job_records(home)
    job_pids = job_processes(record["token"])
    # The machine's operator kills `vlp run` and everything in its process group; the job is not in that group.
    os.killpg(first.process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    timeline["vlp run killed"] = killed_at - started
    first.wait(30)
    wait_until(lambda: not job_processes(record["token"]), ORPHAN_DEADLINE_SECONDS, f"job {record['name']} to stop: {job_processes(record['token'])}")
    orphans_gone_after = time.monotonic() - killed_at
    timeline["job stopped"] = time.monotonic() - started
    left_on_run = run_processes(run_id)
    # As if a trainer on another machine had held the run and died there: its lease expired a while ago.
    from vlp.platform.layout import RunLayout
    from vlp.platform.storage.lease import LeaseRecord, RunLease

    lease_path = Path(RunLayout(str(store), run_id).training_lease)
    released = json.loads(lease_path.read_text())["released"]
    expired = LeaseRecord(token="lost-job", host="node-7", pid=4242, started=1, heartbeat=time.time() - 120, ttl=60)
    lease_path.write_text(json.dumps(expired.__dict__))
    assert RunLease(str(lease_path), "probe").holder() is None

    resumes = [subprocess.Popen([VLP, "run", "--resume", run_id, "--json"], env=env, cwd=work, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(process.wait(600), *process.communicate()) for process in resumes]
    timeline["resumes done"] = time.monotonic() - started
    undisturbed = undisturbed_weights(store, run_id, work / "undisturbed")
    timeline["undisturbed run done"] = time.monotonic() - started
    print(f"owner killed, then two resumes: step at kill {step}, job stopped {orphans_gone_after:.1f} s after the kill;",
          "timeline (s):", {key: round(value, 1) for key, value in timeline.items()}, file=sys.stderr)
    return {"run_id": run_id, "home": home, "store": store, "job_pids": job_pids, "left_on_run": left_on_run, "released": released,
            "orphans_gone_after": orphans_gone_after, "results": results, "undisturbed": undisturbed, "record": record}


def test_killing_vlp_run_with_its_process_group_stops_the_job_within_seconds(killed_then_resumed_twice):
    outcome = killed_then_resumed_twice
    assert len(outcome["job_pids"]) >= 2  # the torchrun agent and its worker were training
    assert outcome["orphans_gone_after"] < ORPHAN_DEADLINE_SECONDS
    assert outcome["left_on_run"] == {}, "a process of the killed run survived"


def test_the_stopped_job_released_its_lease_and_the_resumed_one_took_over_an_expired_one(killed_then_resumed_twice):
    from mlflow.tracking import MlflowClient

    outcome = killed_then_resumed_twice
    assert outcome["released"] is True  # the job that lost its owner let the run go on its way out
    tags = MlflowClient(f"sqlite:///{outcome['home'] / 'mlflow.db'}").get_run(outcome["run_id"]).data.tags
    assert tags["vlp.lease.takeover"].startswith("took over the training lease from host node-7 pid 4242, last heartbeat")


def test_two_resumes_at_once_one_finishes_the_run_and_the_other_is_refused_naming_the_holder(killed_then_resumed_twice):
    outcome = killed_then_resumed_twice
    codes = sorted(code for code, _, _ in outcome["results"])
    assert codes == [0, 2], [(code, err[-2000:]) for code, _, err in outcome["results"]]
    (winner,) = [stdout for code, stdout, _ in outcome["results"] if code == 0]
    (refusal,) = [stderr for code, _, stderr in outcome["results"] if code == 2]
    assert json.loads(winner)["status"] == "FINISHED" and json.loads(winner)["run_id"] == outcome["run_id"]
    errors = [line for line in refusal.splitlines() if line.startswith("vlp: error:")]
    assert len(errors) == 1 and "Traceback" not in refusal, refusal
    assert errors[0].startswith(f"vlp: error: run {outcome['run_id']} is already being resumed by host "), errors
    assert " pid " in errors[0] and "last heartbeat" in errors[0] and "--wait" in errors[0]


def test_every_metric_step_arrives_once_and_the_weights_equal_an_undisturbed_run(killed_then_resumed_twice):
    from mlflow.tracking import MlflowClient

    outcome = killed_then_resumed_twice
    client = MlflowClient(f"sqlite:///{outcome['home'] / 'mlflow.db'}")
    for key in ("train/loss", "train/lr"):
        assert [step for step, _ in metric_history(client, outcome["run_id"], key)] == LOGGED_STEPS, key
    final, undisturbed = final_weights(outcome["store"], outcome["run_id"]), outcome["undisturbed"]
    assert final["step"] == undisturbed["step"] == STEPS
    for key, tensor in undisturbed["model"].items():
        assert torch.equal(final["model"][key], tensor), key


@pytest.fixture(scope="module")
def retried_step(tmp_path_factory):
    """The start-run and train steps of one run (train_job.py), then the same steps again while its job trains,
    as KFP does when it retries or reschedules a step whose pod was lost."""
    from vlp.platform.runtime import RuntimeContext

    work = tmp_path_factory.mktemp("retried-step")
    home, store = work / "home", work / "store"
    spec = experiment("retried", store)
    spec["data"] = {"source": "shards", "train": str(work / "shards")}
    from vlp.workloads.data.shapes import ShapesParams, generate_shapes

    generate_shapes(ShapesParams(samples=96, seed=0, shard_size=16, image_size=32), str(work / "shards"), processes=1)
    runtime = RuntimeContext(storage_root=str(store), tracking_uri=f"sqlite:///{work / 'mlflow.db'}", run_key=uuid.uuid4().hex, git_commit="test")
    (work / "spec.json").write_text(json.dumps(spec))
    (work / "runtime.json").write_text(runtime.model_dump_json())
    command = [PYTHON, str(HERE / "train_job.py"), str(work / "spec.json"), str(work / "runtime.json"), str(work / "shards")]
    env = local_env(home)
    started = time.monotonic()
    timeline = {}
    first = start(command, env, work)
    wait_until(lambda: latest_step(store)[1] >= CHECKPOINT_EVERY, 600, "the first checkpoint\n" + "\n".join(first.lines[-40:]))
    timeline["training"] = time.monotonic() - started
    retry = start(command, env, work)
    retry.wait_for_line("job ", 300)
    timeline["retry attached"] = time.monotonic() - started
    codes = (first.wait(600), retry.wait(600))
    timeline["both done"] = time.monotonic() - started
    print("retried train step: timeline (s):", {key: round(value, 1) for key, value in timeline.items()}, file=sys.stderr)
    return {"first": first, "retry": retry, "codes": codes, "home": home, "work": work, "runtime": runtime}


def test_a_retried_train_step_attaches_to_the_running_job_and_no_second_job_runs(retried_step):
    first, retry = retried_step["first"], retried_step["retry"]
    assert retried_step["codes"] == (0, 0), first.output[-3000:] + retry.output[-3000:]
    assert "attaching to it instead of launching another" in retry.output
    assert first.wait_for_line("RUN ", 1) == retry.wait_for_line("RUN ", 1)
    assert first.wait_for_line("CHECKPOINT ", 1) == retry.wait_for_line("CHECKPOINT ", 1)
    (record,) = job_records(retried_step["home"])
    assert record["state"] == "SUCCEEDED"
    # One job: the retry launched none (a job it launched would stream its replicas' lines), the first job trained
    # once to the end, and no trainer resumed from a checkpoint.
    assert "[main/0]" not in retry.output
    assert sum("vlp.train: finished" in line for line in first.lines) == 1
    assert "resumed from checkpoint" not in first.output + retry.output


def test_the_step_retried_after_its_job_finished_does_not_run_it_again(retried_step):
    again = subprocess.run([PYTHON, str(HERE / "train_job.py"), str(retried_step["work"] / "spec.json"), str(retried_step["work"] / "runtime.json"),
                            str(retried_step["work"] / "shards")], env=local_env(retried_step["home"]), cwd=retried_step["work"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert retried_step["first"].wait_for_line("CHECKPOINT ", 1) in again.stdout
    assert "[main/0]" not in again.stdout + again.stderr  # no job printed anything: none ran


def test_a_second_job_on_a_run_whose_lease_is_live_refuses_to_train_naming_the_holder(retried_step):
    """Another job (another submission's step, another machine) holds the run: this job's trainer refuses at once,
    and torchrun does not restart it into the same refusal although restarts are allowed."""
    from vlp.platform.layout import RunLayout
    from vlp.platform.storage.lease import LeaseRecord

    work, runtime = retried_step["work"], retried_step["runtime"]
    run_id = retried_step["first"].wait_for_line("RUN ", 1)
    spec = {**json.loads((work / "spec.json").read_text()), "resources": {"nodes": 1, "procs_per_node": 1, "max_restarts": 2}}
    (work / "spec-2.json").write_text(json.dumps(spec))
    (work / "runtime-2.json").write_text(runtime.model_copy(update={"run_key": uuid.uuid4().hex}).model_dump_json())
    holder = LeaseRecord(token="other-job", host="node-7", pid=4242, started=1, heartbeat=time.time(), ttl=600, pod="train-pod-0")
    Path(RunLayout(runtime.storage_root, run_id).training_lease).write_text(json.dumps(holder.__dict__))
    script = ("import sys; from pathlib import Path; from vlp.pipelines.steps import pretrain; "
              "pretrain.run(Path(sys.argv[1]).read_text(), Path(sys.argv[2]).read_text(), sys.argv[3], sys.argv[4])")
    started = time.monotonic()
    second = subprocess.run([PYTHON, "-c", script, str(work / "spec-2.json"), str(work / "runtime-2.json"), run_id, str(work / "shards")],
                            env=local_env(retried_step["home"]), cwd=work, capture_output=True, text=True, timeout=300)
    print(f"second job refused after {time.monotonic() - started:.1f} s", file=sys.stderr)
    output = second.stdout + second.stderr
    assert second.returncode != 0
    assert "LaunchFailed: training job" in output and "LeaseHeldError: lease" in output, output[-3000:]
    assert "is held by host node-7 pid 4242 (pod train-pod-0), last heartbeat" in output
    assert output.count("[main/0] [0]:vlp.platform.storage.lease.LeaseHeldError") == 1, "torchrun restarted the refused worker"
    assert "vlp.train: finished" not in output


def test_a_node_that_never_comes_back_fails_the_launch_within_the_rendezvous_timeout(vlp_home):
    from vlp.platform.launch.local_jobs import launch_or_attach_locally, read_record
    from vlp.platform.launch.torchx_launcher import LaunchRequest

    request = LaunchRequest(module="vlp.workloads.train.main", args=["--help"], nodes=2, procs_per_node=1,
                            name=f"lost-node-{uuid.uuid4().hex[:8]}", rendezvous_timeout=RENDEZVOUS_TIMEOUT,
                            env={"VLP_HOME": str(vlp_home), "PYTHONSAFEPATH": "1"})
    lost = {}

    def lose_node_1() -> None:
        # Node 1's agent dies before it can join the rendezvous (its interpreter is still starting) and never returns.
        def agent_of_node_1():
            record = read_record(request.name)
            for pid in job_processes(record.token) if record else []:
                if b"VLP_REPLICA_ID=1" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    return pid
            return None

        pid = wait_until(agent_of_node_1, 120, "node 1's agent", poll=0.01)
        os.kill(pid, signal.SIGKILL)
        lost["at"] = time.monotonic()

    import threading

    killer = threading.Thread(target=lose_node_1, daemon=True)
    started = time.monotonic()
    killer.start()
    result = launch_or_attach_locally(request, stream_logs=False)
    failed_after = time.monotonic() - started
    killer.join(5)
    print(f"lost node: node 1 killed at {lost['at'] - started:.1f} s, launch failed at {failed_after:.1f} s "
          f"(rendezvous timeout {RENDEZVOUS_TIMEOUT} s)", file=sys.stderr)
    assert not result.succeeded
    assert f"rendezvous timed out after {RENDEZVOUS_TIMEOUT} s: node 1 never joined (node 0 waited for it)" in result.reason, result.reason
    assert failed_after < RENDEZVOUS_TIMEOUT + 30
    assert job_processes(read_record(request.name).token) == []  # nothing hangs on
