"""kfp.local steps run in forks of the calling process: own process, kfp's outputs and statuses, a failing step
fails the pipeline and the exit handler still runs, and a SQLite MLflow store is shared safely."""

import os

from kfp import dsl

from vlp.platform.backends.local_kfp import run_pipeline_locally


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def whoami(prefix: str) -> str:
    import os

    return f"{prefix}:{os.getpid()}:{os.environ.get('STEP_SETTING', '')}"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def record(path: str, text: str) -> str:
    with open(path, "a") as handle:
        handle.write(text + "\n")
    return text


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def explode(path: str) -> str:
    with open(path, "a") as handle:
        handle.write("explode ran\n")
    raise RuntimeError("this step fails on purpose")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def log_to_mlflow(tracking_uri: str, value: float) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment(f"forked-{value}")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "value", value)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@dsl.pipeline
def two_steps(prefix: str) -> str:
    first = whoami(prefix=prefix)
    first.set_caching_options(False)
    first.set_env_variable("STEP_SETTING", "from-the-task")
    second = whoami(prefix=first.output)
    second.set_caching_options(False)
    return second.output


@dsl.pipeline
def failing(path: str):
    closing = record(path=path, text="exit handler ran")
    closing.set_caching_options(False)
    with dsl.ExitHandler(closing):
        broken = explode(path=path)
        broken.set_caching_options(False)
        after = record(path=path, text="after the failure").after(broken)
        after.set_caching_options(False)


@dsl.pipeline
def two_mlflow_steps(tracking_uri: str) -> str:
    first = log_to_mlflow(tracking_uri=tracking_uri, value=1.0)
    first.set_caching_options(False)
    second = log_to_mlflow(tracking_uri=tracking_uri, value=2.0).after(first)
    second.set_caching_options(False)
    return second.output


def test_each_step_is_its_own_process_and_gets_its_task_environment(tmp_path, capsys):
    output = run_pipeline_locally(two_steps, {"prefix": "start"}, tmp_path / "root")
    assert capsys.readouterr().out.count("/vlp-step-") >= 2  # forked, not started by kfp's `sh -ec`
    start, first_pid, first_setting, second_pid, second_setting = output.split(":")
    assert start == "start"
    assert first_setting == "from-the-task" and second_setting == ""
    assert len({first_pid, second_pid, str(os.getpid())}) == 3
    assert "STEP_SETTING" not in os.environ


def test_a_failing_step_fails_the_pipeline_stops_its_dependants_and_the_exit_handler_runs(tmp_path, capsys):
    journal = tmp_path / "journal.txt"
    assert run_pipeline_locally(failing, {"path": str(journal)}, tmp_path / "root") is None
    assert journal.read_text().splitlines() == ["explode ran", "exit handler ran"]
    assert "this step fails on purpose" in capsys.readouterr().out


def test_steps_and_the_parent_share_a_sqlite_store_opened_before_the_forks(tmp_path):
    from mlflow.tracking import MlflowClient

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = MlflowClient(tracking_uri=tracking_uri)
    parent.search_experiments()
    last_run = run_pipeline_locally(two_mlflow_steps, {"tracking_uri": tracking_uri}, tmp_path / "root", tracking_uri=tracking_uri)
    assert parent.get_run(last_run).data.metrics == {"value": 2.0}
    assert len(parent.search_experiments(filter_string="name LIKE 'forked-%'")) == 2


def test_a_step_forked_while_another_thread_builds_a_store_does_not_wait_for_it(tmp_path):
    """A thread of `vlp run` (the training bar, system metrics) may be building an MLflow store, holding MLflow's
    store-building lock, when a step forks; the step must not wait forever on the copy of that lock."""
    import threading

    import pytest
    from mlflow.tracking._tracking_service import registry

    building = registry._building_store_lock
    building.acquire()  # as if another thread were in the middle of building a store
    try:
        elsewhere = f"sqlite:///{tmp_path / 'other.db'}"  # a store no one has built yet: the step builds it
        finished = threading.Event()
        result = {}

        def run():
            result["run"] = run_pipeline_locally(two_mlflow_steps, {"tracking_uri": elsewhere}, tmp_path / "root", tracking_uri=None)
            finished.set()

        threading.Thread(target=run, daemon=True).start()
        assert finished.wait(120), "a forked step waited on the store-building lock it inherited"
    finally:
        building.release()
    assert result["run"]


def test_a_fork_waits_until_no_other_thread_is_inside_the_store():
    """A fork copies locks as they are: one taken while another thread was inside SQLite copied SQLite's memory
    mutex held and the step hung on its first free (seen in CI). `fork()` waits for `between_forks()` blocks."""
    import threading
    import time

    from vlp.platform.backends.forked_steps import between_forks, fork

    inside, released_at = threading.Event(), []

    def store_call():
        with between_forks():
            inside.set()
            time.sleep(0.5)
            released_at.append(time.monotonic())

    thread = threading.Thread(target=store_call)
    thread.start()
    assert inside.wait(10)
    pid = fork()
    if pid == 0:
        os._exit(0)
    forked_at = time.monotonic()
    os.waitpid(pid, 0)
    thread.join()
    assert released_at and forked_at >= released_at[0]


def test_the_system_metrics_thread_calls_the_store_only_between_forks(tmp_path, monkeypatch):
    """MLflow's monitor thread holds the fork guard whenever it calls the store, and never while it sleeps."""
    import time

    from mlflow.tracking import MlflowClient

    from vlp.platform.backends.forked_steps import between_forks
    from vlp.platform.tracking.system_metrics import monitor_between_forks

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("guarded", artifact_location=(tmp_path / "artifacts").as_uri()))
    guard, held_during_calls = between_forks(), []
    original = MlflowClient.get_run

    def get_run(self, run_id):
        held_during_calls.append(guard._is_owned())
        return original(self, run_id)

    monkeypatch.setattr(MlflowClient, "get_run", get_run)
    monitor = monitor_between_forks(run.info.run_id, 0.2, uri)
    monitor.start()
    try:
        deadline = time.monotonic() + 60
        while len(held_during_calls) < 12 and time.monotonic() < deadline:
            assert guard.acquire(timeout=5), "the monitor held the fork guard while it slept"
            guard.release()
            time.sleep(0.05)
    finally:
        monitor.finish()
    assert len(held_during_calls) >= 12 and all(held_during_calls)
    assert any(key.startswith("system/cpu_utilization") for key in client.get_run(run.info.run_id).data.metrics)
