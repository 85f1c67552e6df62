"""Every user mistake: one line on stderr naming the field or file and what to do, exit code 2, no traceback,
and nothing half-written (no state directory, no MLflow run, no object in the bucket).

The corpus runs in-process through the same entry as the `vlp` script (`run_app`), where an exception that
escapes the error boundary fails the test as the traceback a user would see; a few cases also run as real
`vlp` processes. Hypothesis then throws random documents and overrides at the spec loader.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jobs import VLP

OK = "name: ok\ntrain: {max_steps: 2}\n"
SECRET = "AKIAPLANTEDSECRET1234"


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    expect: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], dict[str, str]] | None = None
    """Prepares state (a store with runs) and returns more placeholders for args."""


def spec_case(id: str, content: str | bytes, expect: str, *extra: str) -> Case:
    return Case(id, ("run", "{dir}/exp.yaml", *extra), expect, files={"exp.yaml": content})


def finished_and_foreign_runs(case_dir: Path) -> dict[str, str]:
    """A local store with a FINISHED vlp run and a run vlp did not start."""
    from mlflow.tracking import MlflowClient

    from vlp.platform.tracking.local_store import prepare_tracking_store

    uri = f"sqlite:///{case_dir / 'home' / 'mlflow.db'}"
    prepare_tracking_store(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("old")
    finished = client.create_run(experiment, tags={"vlp.run_key": uuid.uuid4().hex}).info.run_id
    client.set_terminated(finished, "FINISHED")
    foreign = client.create_run(experiment).info.run_id
    client.set_terminated(foreign, "FAILED")
    return {"finished": finished, "foreign": foreign}


CORPUS = [
    # The experiment file itself.
    Case("missing-file", ("run", "{dir}/absent.yaml"), "absent.yaml: no such experiment file"),
    spec_case("yaml-syntax", "name: [x\ntrain: {max_steps: 1}\n", "is not valid YAML"),
    spec_case("yaml-not-mapping", "- name: x\n", "must be a YAML mapping"),
    spec_case("not-text", b"\xff\xfe\x00\x81binary", "is not a text file"),
    spec_case("unknown-key", OK + "bogus: 1\n", "bogus: unknown key"),
    spec_case("unknown-nested-key", "name: x\ntrain: {max_steps: 1, lrr: 0.1}\n", "train.lrr: unknown key"),
    spec_case("missing-name", "train: {max_steps: 1}\n", "name: required field is missing"),
    spec_case("missing-train", "name: x\n", "train: required field is missing"),
    spec_case("bad-name", "name: My_Run\ntrain: {max_steps: 1}\n", "name: String should match pattern"),
    spec_case("name-traversal", "name: ../../etc\ntrain: {max_steps: 1}\n", "name: String should match pattern"),
    spec_case("team-spaces", "name: x\nteam: Team A\ntrain: {max_steps: 1}\n", "team: String should match pattern"),
    spec_case("steps-not-int", "name: x\ntrain: {max_steps: ten}\n", "train.max_steps: Input should be a valid integer"),
    spec_case("steps-zero", "name: x\ntrain: {max_steps: 0}\n", "train.max_steps: Input should be greater than or equal to 1"),
    spec_case("batch-one", "name: x\ntrain: {max_steps: 1, batch_size: 1}\n", "train.batch_size: Input should be greater than or equal to 2"),
    spec_case("no-end", "name: x\ntrain: {lr: 0.1}\n", "set train.max_steps or train.max_seconds"),
    spec_case("seconds-no-schedule", "name: x\ntrain: {max_seconds: 10}\n", "train.schedule_steps is required"),
    spec_case("precision", "name: x\ntrain: {max_steps: 1, precision: fp8}\n", "train.precision: Input should be"),
    spec_case("shards-no-train", OK + "data: {source: shards}\n", "data.train is required"),
    spec_case("image-size", OK + "data: {shapes: {image_size: 8}}\n", "data.shapes.image_size: Input should be greater than or equal to 16"),
    spec_case("bad-sample-limit", OK + "data: {max_bad_samples: -1}\n", "data.max_bad_samples: Input should be greater than or equal to 0"),
    spec_case("gate-syntax", OK + "register: {gates: ['acc1 > high']}\n", "is not of the form 'metric >= number'"),
    spec_case("gate-unknown-metric", OK + "register: {gates: ['zeroshot/shapes/acc > 0.8']}\n",
              "register.gates: 'zeroshot/shapes/acc' is not a metric this experiment's evaluation logs (known: zeroshot/shapes/acc1"),
    spec_case("sweep-unknown-field", OK + "sweep: {parameters: {train.lrr: [0.1]}, metric: zeroshot/shapes/acc1}\n",
              "sweep.parameters.train.lrr: no such field in the experiment"),
    spec_case("sweep-empty-grid", OK + "sweep: {parameters: {train.lr: []}, metric: zeroshot/shapes/acc1}\n", "values: an empty list"),
    spec_case("sweep-parallelism-zero", OK + "sweep: {parameters: {train.lr: [0.1]}, parallelism: 0, metric: zeroshot/shapes/acc1}\n",
              "sweep.parallelism: Input should be greater than or equal to 1"),
    spec_case("model-name", OK + "register: {model_name: 'my model!'}\n", "register.model_name: String should match pattern"),
    spec_case("nodes-zero", OK + "resources: {nodes: 0}\n", "resources.nodes: Input should be greater than or equal to 1"),
    spec_case("batch-not-divisible", "name: x\ntrain: {max_steps: 1, batch_size: 3}\nresources: {nodes: 2}\n",
              "train.batch_size 3 is not divisible by the 2 training processes"),
    spec_case("unknown-preset", OK + "model: {preset: no-such-preset}\n", "model.preset: unknown preset 'no-such-preset'"),
    spec_case("missing-init-weights", OK + "model: {init_from: /nonexistent/ckpt.pt}\n", "model.init_from: no checkpoint at /nonexistent/ckpt.pt"),
    spec_case("credentials-in-s3-uri", OK + f"storage_root: s3://{SECRET}:hunter2@bucket/x\n", "storage_root: s3:// URI holds credentials"),
    spec_case("s3-key-traversal", OK + "storage_root: s3://vlp-test/a/../b\n", "storage_root: invalid object key segment '..'"),
    spec_case("storage-root-is-file", OK + "storage_root: '{dir}/exp.yaml'\n", "storage_root: {dir}/exp.yaml is a file, not a directory"),
    spec_case("s3-missing-bucket", OK + "storage_root: s3://no-such-bucket-vlp/x\n", "storage_root: cannot list s3://no-such-bucket-vlp/x: NoSuchBucket"),
    # Data the experiment points at.
    spec_case("no-shards", OK + "data: {source: shards, train: '{dir}'}\n", "data.train: no webdataset shards (*.tar) found at {dir}"),
    Case("no-eval-shards", ("run", "{dir}/exp.yaml"), "data.eval: no webdataset shards (*.tar) found at {dir}/nowhere",
         files={"exp.yaml": OK + "data: {source: shards, train: '{dir}/d', eval: '{dir}/nowhere'}\n", "d/shard-000000.tar": b"x"}),
    spec_case("s3-no-shards", OK + "data: {source: shards, train: 's3://vlp-test/nothing-here'}\n", "data.train: no webdataset shards (*.tar) found at s3://vlp-test/nothing-here"),
    # Command-line arguments.
    spec_case("set-no-equals", OK, "--set 'train.lr': expected KEY=VALUE", "--set", "train.lr"),
    spec_case("set-into-value", OK, "--set 'train.max_steps.x=1': max_steps is not a section", "--set", "train.max_steps.x=1"),
    spec_case("set-bad-value", OK, "train.lr: Input should be greater than 0", "--set", "train.lr=-1"),
    spec_case("unknown-option", OK, "No such option: --no-such-flag", "--no-such-flag"),
    Case("run-without-file", ("run",), "missing EXPERIMENT: give an experiment file"),
    Case("resume-not-an-id", ("run", "--resume", "../../etc/passwd"), "--resume '../../etc/passwd': not an MLflow run id"),
    Case("resume-empty-home", ("run", "--resume", "0" * 32), "no runs recorded yet"),
    Case("resume-with-file", ("run", "{dir}/exp.yaml", "--resume", "0" * 32), "give no experiment file or --set", files={"exp.yaml": OK}),
    Case("resume-unknown-run", ("run", "--resume", "f" * 32), f"--resume {'f' * 32}: no such run", setup=finished_and_foreign_runs),
    Case("resume-finished-run", ("run", "--resume", "{finished}"), "the run already FINISHED", setup=finished_and_foreign_runs),
    Case("resume-foreign-run", ("run", "--resume", "{foreign}"), "not a run started by vlp", setup=finished_and_foreign_runs),
    spec_case("wait-without-resume", OK, "--wait goes with --resume RUN_ID", "--wait"),
    Case("password-in-tracking-uri", ("run", "{dir}/exp.yaml"), "MLFLOW_TRACKING_URI: holds a password in the URL (http://***@127.0.0.1:1)",
         files={"exp.yaml": OK}, env={"MLFLOW_TRACKING_URI": f"http://user:{SECRET}@127.0.0.1:1"}),
    Case("promote-bad-version", ("promote", "shapes-clip", "latest"), "VERSION 'latest': expected a version number"),
    Case("data-make-zero-samples", ("data", "make", "shapes", "--out", "{dir}/out", "--samples", "0"), "Invalid value for '--samples'"),
    Case("compile-missing-output", ("compile", "{dir}/exp.yaml"), "Missing option '-o' / '--output'", files={"exp.yaml": OK}),
    # Profiles.
    Case("profiles-file-missing", ("profiles", "list"), "VLP_PROFILES={dir}/absent.yaml: no such file", env={"VLP_PROFILES": "{dir}/absent.yaml"}),
    Case("profiles-bad-yaml", ("profiles", "list"), "is not valid YAML", files={"p.yaml": "profiles: [\n"}, env={"VLP_PROFILES": "{dir}/p.yaml"}),
    Case("profile-inline-secret", ("profiles", "list"), "kfp.auth.token: looks like an inline secret",
         files={"p.yaml": f"profiles:\n  - name: t\n    kfp: {{host: https://x, auth: {{token: {SECRET}}}}}\n"}, env={"VLP_PROFILES": "{dir}/p.yaml"}),
    Case("profile-missing-fields", ("profiles", "list"), "profile tiny: namespace: required field is missing",
         files={"p.yaml": "profiles:\n  - name: tiny\n    image: r/vlp:1\n"}, env={"VLP_PROFILES": "{dir}/p.yaml"}),
    Case("submit-unknown-profile", ("submit", "{dir}/exp.yaml", "--profile", "nope", "--dry-run", "--out", "{dir}/out"), "--profile 'nope': no such profile",
         files={"exp.yaml": OK, "p.yaml": "profiles: []\n"}, env={"VLP_PROFILES": "{dir}/p.yaml"}),
]


def fill(text, values: dict[str, str]):
    if isinstance(text, bytes):
        return text
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def snapshot(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): path.stat().st_size for path in root.rglob("*") if path.is_file()}


def run_in_process(args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    from vlp.cli.boundary import run_app
    from vlp.cli.main import app

    monkeypatch.setattr(sys, "argv", ["vlp", *args])
    try:
        run_app(app)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, capsys.readouterr().err


@pytest.fixture
def isolated(tmp_path, monkeypatch, s3_server, s3_bucket):
    from services import TEST_CREDENTIALS

    for key, value in {**TEST_CREDENTIALS, "AWS_ENDPOINT_URL": s3_server.url, "VLP_HOME": str(tmp_path / "home"),
                       "XDG_CONFIG_HOME": str(tmp_path / "config")}.items():
        monkeypatch.setenv(key, value)
    for key in ("MLFLOW_TRACKING_URI", "VLP_PROFILES", "VLP_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def bucket_keys(s3_server, s3_bucket) -> set[str]:
    import boto3
    from services import TEST_CREDENTIALS

    client = boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1", aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    return {item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket) for item in page.get("Contents", [])}


def test_corpus_is_large_and_distinct():
    assert len(CORPUS) >= 30 and len({case.id for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.id)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, isolated, capsys, monkeypatch, s3_server, s3_bucket):
    values = {"dir": str(isolated)}
    for name, content in case.files.items():
        path = isolated / name
        path.parent.mkdir(parents=True, exist_ok=True)
        content = fill(content, values)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if case.setup is not None:
        values.update(case.setup(isolated))
    for key, value in case.env.items():
        monkeypatch.setenv(key, fill(value, values))
    capsys.readouterr()  # what the setup printed is not the command's output
    home_before = snapshot(isolated / "home") if (isolated / "home").exists() else None
    files_before, keys_before = snapshot(isolated), bucket_keys(s3_server, s3_bucket)

    code, stderr = run_in_process([fill(arg, values) for arg in case.args], capsys, monkeypatch)

    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("vlp: error: "), stderr
    assert fill(case.expect, values) in lines[0]
    assert SECRET not in stderr and "hunter2" not in stderr
    # Nothing half-written: no new file (a fresh home stays absent), no new object, no run opened.
    assert snapshot(isolated) == files_before
    if home_before is None:
        assert not (isolated / "home").exists()
    assert bucket_keys(s3_server, s3_bucket) == keys_before
    if case.setup is not None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{isolated / 'home' / 'mlflow.db'}")
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert len(runs) == 2 and all(run.info.status != "RUNNING" for run in runs)


@pytest.mark.parametrize("case_id", ["unknown-key", "set-no-equals", "unknown-option", "resume-not-an-id", "profile-inline-secret"])
def test_the_real_vlp_process_prints_one_line_and_exits_2(case_id, tmp_path):
    case = next(case for case in CORPUS if case.id == case_id)
    values = {"dir": str(tmp_path)}
    for name, content in case.files.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else fill(content, values).encode())
    env = {**os.environ, "VLP_HOME": str(tmp_path / "home"), **{key: fill(value, values) for key, value in case.env.items()}}
    result = subprocess.run([VLP, *(fill(arg, values) for arg in case.args)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and fill(case.expect, values) in result.stderr
    assert "Traceback" not in result.stderr and SECRET not in result.stderr


# Fuzzing: random values in every field of a valid document, random keys, random overrides.
def _valid_document() -> dict:
    from vlp.platform.spec import spec_from_dict

    return spec_from_dict({"name": "fuzz", "train": {"max_steps": 3}}).model_dump(mode="json", by_alias=True)


def _paths(document: dict, prefix: str = "") -> list[str]:
    paths = []
    for key, value in document.items():
        path = f"{prefix}.{key}" if prefix else key
        paths.append(path)
        if isinstance(value, dict):
            paths.extend(_paths(value, path))
    return paths


VALID = _valid_document()
PATHS = _paths(VALID)
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**12), max_value=10**12), st.floats(allow_nan=True), st.text(max_size=12),
    st.lists(st.one_of(st.integers(), st.text(max_size=6)), max_size=3), st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)


def _set(document: dict, path: str, value) -> dict:
    import copy

    result = copy.deepcopy(document)
    node = result
    *parents, last = path.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value
    return result


def _assert_one_line_user_error(call) -> None:
    from vlp.platform.errors import SpecError

    try:
        call()
    except SpecError as err:
        message = str(err)
        assert message and "\n" not in message and "Traceback" not in message


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(st.one_of(st.sampled_from(PATHS), st.text(min_size=1, max_size=8)), ANY_VALUE), min_size=1, max_size=4))
def test_fuzzed_documents_validate_or_fail_with_one_line(changes):
    from vlp.platform.spec import spec_from_dict

    document = VALID
    for path, value in changes:
        document = _set(document, path, value)
    _assert_one_line_user_error(lambda: spec_from_dict(document, source="fuzz.yaml"))


@settings(max_examples=200, deadline=None)
@given(overrides=st.lists(st.text(max_size=30), min_size=1, max_size=3))
def test_fuzzed_overrides_validate_or_fail_with_one_line(overrides):
    from vlp.platform.spec import spec_from_dict

    _assert_one_line_user_error(lambda: spec_from_dict({"name": "fuzz", "train": {"max_steps": 3}}, overrides, source="fuzz.yaml"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_fuzzed_yaml_text_validates_or_fails_with_one_line(text, tmp_path):
    from vlp.platform.spec import load_spec

    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _assert_one_line_user_error(lambda: load_spec(path))
