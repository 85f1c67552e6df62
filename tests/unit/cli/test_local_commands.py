"""The local CLI verbs against a real (SQLite) MLflow store and local storage."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from services import VLP


def vlp(*args, env, cwd, timeout=300):
    return subprocess.run([VLP, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_data_make_shapes_writes_shards_and_manifest(tmp_path, vlp_home):
    env = {**os.environ}
    out = tmp_path / "shapes"
    result = vlp("data", "make", "shapes", "--out", str(out), "--samples", "300", "--seed", "3", "--shard-size", "100", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["samples"] == 300 and len(manifest["shards"]) == 3 and manifest["samples_per_second"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    human = vlp("data", "make", "shapes", "--out", str(tmp_path / "again"), "--samples", "50", env=env, cwd=tmp_path)
    assert human.returncode == 0 and "samples/s" in human.stdout


def test_compile_writes_loadable_pipeline(tmp_path, vlp_home):
    from kfp.components import load_component_from_file

    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump({"name": "compiled", "train": {"max_steps": 3}}))
    target = tmp_path / "out" / "pipeline.yaml"
    result = vlp("compile", str(spec), "-o", str(target), env={**os.environ}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pipeline = load_component_from_file(str(target))
    assert pipeline.name == "vlp-pretrain"
    document = yaml.safe_load(target.read_text())
    executors = document["deploymentSpec"]["executors"]
    assert {"exec-start-run", "exec-prepare-data", "exec-pretrain", "exec-evaluate", "exec-register", "exec-finish-run"} <= set(executors)
    defaults = document["root"]["inputDefinitions"]["parameters"]
    assert json.loads(defaults["spec_json"]["defaultValue"])["name"] == "compiled"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One finished tiny run with a registered version, in a state directory of its own."""
    tmp_path = tmp_path_factory.mktemp("tiny-run")
    vlp_home = tmp_path / "vlp-home"
    env = {**os.environ, "VLP_HOME": str(vlp_home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    spec = tmp_path / "exp.yaml"
    spec.write_text("# A tiny run for the CLI tests.\n" + yaml.safe_dump({
        "name": "tiny-local",
        "data": {"shapes": {"train_samples": 256, "eval_samples": 64, "shard_size": 128}},
        "train": {"batch_size": 32, "max_steps": 4, "warmup_steps": 1, "log_every": 2, "checkpoint_every": 2},
        "register": {"model_name": "tiny-clip", "gates": ["zeroshot/shapes/acc1 >= 1.01"]},
    }))
    run = vlp("run", str(spec), "--json", env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return env, tmp_path, json.loads(run.stdout)


def test_tiny_run_then_list_show_models_and_gated_promotion(tiny_run):
    env, tmp_path, outcome = tiny_run
    assert outcome["status"] == "FINISHED" and outcome["model"] == {"name": "tiny-clip", "version": "1"}

    runs = json.loads(vlp("runs", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert [r["run_id"] for r in runs] == [outcome["run_id"]]
    assert list(runs[0]["headline"]) == ["zeroshot/shapes/acc1"]  # the gate's metric
    listed = vlp("runs", "list", env=env, cwd=tmp_path)
    assert listed.stderr == "" and "headline" in listed.stdout and "zeroshot/shapes/acc1" in listed.stdout
    # Every step's output is in its own log, also on the run; nothing but the document was printed on stdout.
    logs = os.listdir(outcome["logs"])
    assert {"start-run.log", "prepare-data.log", "pretrain.log", "evaluate.log", "register.log", "pipeline.log"} <= set(logs)
    assert_run_tells_the_story(env, outcome)
    assert_the_model_loads_where_vlp_is_not_installed(env)
    shown = json.loads(vlp("runs", "show", outcome["run_id"], "--json", env=env, cwd=tmp_path).stdout)
    assert shown["status"] == "FINISHED" and shown["params"]["train.max_steps"] == "4"
    assert "zeroshot/shapes/acc1" in shown["metrics"]
    models = json.loads(vlp("models", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert models[0]["name"] == "tiny-clip" and models[0]["aliases"] == ["candidate"]

    refused = vlp("promote", "tiny-clip", "1", "--alias", "champion", env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "zeroshot/shapes/acc1 >= 1.01" in refused.stderr
    missing = vlp("runs", "show", "no-such-run", env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def assert_run_tells_the_story(env, outcome):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{env['VLP_HOME']}/mlflow.db"
    client = MlflowClient(store, registry_uri=store)
    run = client.get_run(outcome["run_id"])
    assert run.data.tags["mlflow.note.content"].startswith("A tiny run for the CLI tests.")
    assert "- **model**: clip" in run.data.tags["mlflow.note.content"]
    assert run.data.tags["mlflow.source.name"] == "vlp run tiny-local" and run.data.tags["mlflow.source.git.commit"]
    assert {item.path for item in client.list_artifacts(outcome["run_id"], "logs")} >= {"logs/pretrain.log", "logs/pipeline.log"}
    version = client.get_model_version("tiny-clip", "1")
    card = version.description
    assert card.startswith("# tiny-clip v1") and "| `zeroshot/shapes/acc1 >= 1.01` |" in card and "FAIL" in card
    assert 'mlflow.pyfunc.load_model("models:/tiny-clip/1")' in card and "open_clip.create_model_and_transforms" in card
    from mlflow.models import get_model_info

    import mlflow
    import mlflow.pyfunc

    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    info = get_model_info("models:/tiny-clip/1")
    assert [column.name for column in info.signature.inputs.inputs] == ["text", "image"]
    assert [column.name for column in info.signature.outputs.inputs] == ["embedding"]
    requirements = Path(mlflow.pyfunc.get_model_dependencies("models:/tiny-clip/1")).read_text().split()
    assert requirements and all("==" in line for line in requirements if not line.startswith("mlflow")), requirements
    assert not any(line.split("==")[0] == "vlp" for line in requirements)


def assert_the_model_loads_where_vlp_is_not_installed(env):
    """The registered pyfunc carries vlp's code: an interpreter that cannot import vlp loads it and embeds."""
    import site
    import sys

    script = (
        "import sys; sys.path[:0] = sys.argv[1:]\n"
        "import importlib.util; assert importlib.util.find_spec('vlp') is None, 'vlp is importable'\n"
        "import mlflow.pyfunc, pandas as pd\n"
        "model = mlflow.pyfunc.load_model('models:/tiny-clip/1')\n"
        "print(len(model.predict(pd.DataFrame({'text': ['a red circle', 'a blue square']}))['embedding'][1]))\n"
    )
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{env['VLP_HOME']}/mlflow.db"}
    # -S: no site-packages processing, so no .pth and no editable vlp; the libraries' folder is put on the path by hand.
    result = subprocess.run([sys.executable, "-S", "-c", script, *site.getsitepackages()], env={**env, **store, "PYTHONSAFEPATH": "1"},
                            capture_output=True, text=True, timeout=300, cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 0


def test_ui_serves_the_local_store(tmp_path, vlp_home):
    from services import free_port

    port = free_port()
    env = {**os.environ, "VLP_HOME": str(vlp_home)}
    with vlp_ui(env, tmp_path, port):
        assert (vlp_home / "mlflow.db").exists()


@contextlib.contextmanager
def vlp_ui(env, cwd, port: int):
    """`vlp ui` on `port`, up (its /health answers) for the block, then stopped."""
    import signal

    process = subprocess.Popen([VLP, "ui", "--port", str(port)], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "vlp ui did not come up"
                time.sleep(0.3)
        yield
    finally:
        # mlflow server runs its web workers as children: stop the whole process group.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def test_the_ui_shows_the_run_s_story_and_the_model_card_in_a_browser(tiny_run, tmp_path):
    """`vlp ui` driven by Debian's chromium: the run page has the description, the metrics and the loss chart; the
    model version page the alias, the model card and the schema. Screenshots go to $VLP_TEST_ARTIFACTS (or tmp)."""
    import shutil

    if not os.path.exists(CHROMIUM) or importlib.util.find_spec("playwright") is None:
        message = "needs Debian's chromium (apt-get install -y chromium) and pip playwright; ./dev.sh test installs both"
        if os.environ.get("CI") or os.environ.get("VLP_REQUIRE_BROWSER"):  # ./dev.sh test installs the browser: missing is a failure
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    from services import free_port

    env, _, outcome = tiny_run
    artifacts = Path(os.environ.get("VLP_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with vlp_ui(env, tmp_path, port):
        from mlflow.tracking import MlflowClient

        run = MlflowClient(f"sqlite:///{env['VLP_HOME']}/mlflow.db").get_run(outcome["run_id"])
        base = f"http://127.0.0.1:{port}/#"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/experiments/{run.info.experiment_id}/runs/{outcome['run_id']}")
            page.get_by_text("A tiny run for the CLI tests.").first.wait_for(timeout=60_000)
            page.get_by_text("zeroshot/shapes/acc1").first.wait_for(timeout=30_000)
            page.screenshot(path=str(artifacts / "ui-run.png"), full_page=True)
            page.get_by_role("tab", name="Model metrics").click()
            page.get_by_placeholder("Search metric charts").fill("train/loss")
            page.get_by_text("(train/loss)").first.wait_for(timeout=60_000)  # the loss chart's legend
            page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
            page.screenshot(path=str(artifacts / "ui-run-charts.png"), full_page=True)
            page.goto(f"{base}/models/tiny-clip/versions/1")
            page.get_by_text("candidate").first.wait_for(timeout=60_000)
            page.get_by_text("Load it").first.wait_for(timeout=30_000)  # the model card's section
            page.get_by_text("Inputs (2)").first.wait_for(timeout=30_000)  # the signature: text and image in, embedding out
            body = page.inner_text("body")
            assert "Outputs (1)" in body and "zeroshot/shapes/acc1 >= 1.01" in body and "parameters" in body
            page.screenshot(path=str(artifacts / "ui-model-version.png"), full_page=True)
            browser.close()
    for name in ("ui-run.png", "ui-run-charts.png", "ui-model-version.png"):
        assert (artifacts / name).stat().st_size > 10_000
    if os.environ.get("VLP_UPDATE_README_SCREENSHOTS"):
        docs = Path(__file__).resolve().parents[3] / "docs" / "images"
        docs.mkdir(exist_ok=True)
        for name in ("ui-run.png", "ui-model-version.png"):
            shutil.copyfile(artifacts / name, docs / name)
