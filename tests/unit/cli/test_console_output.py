"""What the CLI prints: `--json` is the document alone (colour forced or not), NO_COLOR takes the colour out of a
terminal's output, a pipe gets plain lines, and `vlp runs attach` draws a background run's steps and summary as
`vlp run` does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "cluster"))
from cluster_harness import run_vlp  # noqa: E402 - the CLI in this process, error boundary included

COLOUR = re.compile(r"\x1b\[[0-9;]*m")
FOREGROUND = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|38;[0-9;]+)m")


@pytest.fixture
def store(vlp_home, monkeypatch):
    """Two finished runs of one experiment and a registered version of the first."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from vlp.platform.registry.versions import tag_version
    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking.headline import headline_tag
    from vlp.platform.tracking.local_store import prepare_tracking_store

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = default_tracking_uri()
    prepare_tracking_store(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("printing", artifact_location=(vlp_home / "mlartifacts").as_uri())
    ids = []
    for lr, accuracy in (("0.001", 0.5), ("0.01", 0.75)):
        run = client.create_run(experiment, run_name=f"lr-{lr}", tags=headline_tag(["zeroshot/pets/acc1"]))
        client.log_batch(run.info.run_id, metrics=[Metric("train/loss", 1.0, 0, 1), Metric("zeroshot/pets/acc1", accuracy, 0, 0)],
                         params=[Param("train.lr", lr)])
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    client.create_registered_model("printing-clip")
    version = client.create_model_version("printing-clip", f"runs:/{ids[0]}/model", run_id=ids[0])
    tag_version("printing-clip", str(version.version), {"zeroshot/pets/acc1": 0.5}, [], "hash", "commit", "candidate", uri)
    return ids


def test_json_is_the_document_alone_even_with_colour_forced(store, monkeypatch, tmp_path):
    monkeypatch.setenv("FORCE_COLOR", "1")
    first, second = store
    commands = {
        ("runs", "list", "--json"): lambda doc: [run["run_id"] for run in doc] == [second, first],
        ("runs", "show", first, "--json"): lambda doc: doc["params"] == {"train.lr": "0.001"},
        ("runs", "compare", first, second, "--json", "--plot", str(tmp_path / "curves.png")): lambda doc: len(doc["runs"]) == 2,
        ("models", "list", "--json"): lambda doc: [(v["name"], v["version"], v["aliases"]) for v in doc] == [("printing-clip", "1", ["candidate"])],
        ("models", "history", "printing-clip", "--json"): lambda doc: isinstance(doc, list),
    }
    for args, check in commands.items():
        code, out, err = run_vlp(*args)
        assert code == 0 and err == "", (args, err)
        assert not COLOUR.search(out), args
        assert check(json.loads(out)), (args, out[:500])


def test_no_color_keeps_colour_out_of_a_terminal_s_summary(monkeypatch, capsys):
    from vlp.cli.run_command import print_summary
    from vlp.pipelines.local_run import RunOutcome

    outcome = RunOutcome(run_id="abc", status="FINISHED", metrics={"zeroshot/pets/acc1": 0.5}, experiment_id="1")
    monkeypatch.setenv("FORCE_COLOR", "1")  # stdout as a terminal
    monkeypatch.delenv("NO_COLOR", raising=False)
    print_summary("exp", outcome)
    assert FOREGROUND.search(capsys.readouterr().out), "a terminal gets colour"
    monkeypatch.setenv("NO_COLOR", "1")
    print_summary("exp", outcome)
    coloured = capsys.readouterr().out
    assert not FOREGROUND.search(coloured) and "FINISHED" in coloured
    monkeypatch.delenv("FORCE_COLOR")
    monkeypatch.delenv("NO_COLOR")
    print_summary("exp", outcome)
    piped = capsys.readouterr().out
    assert not COLOUR.search(piped) and "exp  run abc  FINISHED" in piped


def test_the_summary_lists_overall_metrics_and_leaves_breakdowns_to_mlflow(monkeypatch, capsys):
    from vlp.cli.run_command import print_summary
    from vlp.pipelines.local_run import RunOutcome

    metrics = {"vqa/shapes/acc1": 0.6, "vqa/shapes/acc1/colour": 0.9, "vqa/shapes/acc1/count": 0.4, "zeroshot/shapes/acc1": 0.8}
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    print_summary("exp", RunOutcome(run_id="abc", status="FINISHED", metrics=metrics, experiment_id="1"))
    out = capsys.readouterr().out
    assert "vqa/shapes/acc1 " in out and "zeroshot/shapes/acc1" in out and "acc1/colour" not in out
    assert "(2 more per class, kind or domain" in out


BACKGROUND = '''
import sys, time
from pathlib import Path
from vlp.platform.backends.step_logs import StepLogs
from vlp.pipelines.local_run import write_step_states
logs = StepLogs(Path(sys.argv[1]))
logs.on_change = lambda: write_step_states(logs)
log = open(sys.argv[2], "a", buffering=1)
for name, code in (("start-run", 0), ("prepare-data", 0), ("pretrain", 3)):
    record = logs.start(name)
    record.log.write_text(f"{name} says hello\\n")
    log.write(f"raw line of {name}\\n")
    time.sleep(0.4)
    logs.finish(record, code)
    if code:
        break
'''


@pytest.mark.parametrize("verbose", [False, True])
def test_attach_draws_the_background_run_s_steps_and_summary(vlp_home, monkeypatch, verbose):
    from vlp.pipelines.local_run import DetachedRun, _write_detached, log_dir
    from vlp.platform.launch.ownership import process_start_time
    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking.local_store import prepare_tracking_store
    from vlp.platform.tracking.runs import client, finish_run, start_run

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    uri = default_tracking_uri()
    prepare_tracking_store(uri)
    key = "d" * 32
    run_id = start_run("attached", "attached-1", {"vlp.run_key": key, "vlp.error": "training job failed: exit 3"}, {}, uri)
    client(uri).log_metric(run_id, "zeroshot/shapes/acc1", 0.25)
    finish_run(run_id, "FAILED", uri)
    raw = vlp_home / "background.log"
    raw.write_text("")
    background = subprocess.Popen([sys.executable, "-c", BACKGROUND, str(log_dir(key)), str(raw)])
    _write_detached(DetachedRun(run_key=key, pid=background.pid, started=process_start_time(background.pid) or 0, log=str(raw), host="here"))
    started = time.monotonic()
    code, out, err = run_vlp("runs", "attach", run_id, *(["-v"] if verbose else []))
    background.wait(30)
    assert code == 1 and time.monotonic() - started >= 1.0, (out, err)
    assert not COLOUR.search(out)
    assert f"attached  run {run_id}  FAILED" in out and "zeroshot/shapes/acc1" in out and f"logs: {log_dir(key)}" in out
    if verbose:
        assert "raw line of start-run\nraw line of prepare-data\nraw line of pretrain\n" in out
        return
    assert "raw line" not in out
    lines = out.splitlines()
    for step in ("start-run", "prepare-data"):
        assert any(re.fullmatch(rf"{step}: done in \ds", line) for line in lines), out
    assert any(re.fullmatch(r"pretrain: failed in \ds", line) for line in lines), out
    assert f"step pretrain failed (exit 3); last lines of {log_dir(key) / 'pretrain.log'}:" in out and "  | pretrain says hello" in out
