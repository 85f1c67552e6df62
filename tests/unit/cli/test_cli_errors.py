"""User mistakes at the command line: one line on stderr, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import subprocess

import pytest
from services import VLP


def run_vlp(*args, cwd, env=None):
    import os

    return subprocess.run([VLP, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "content, expected",
    [
        ("name: x\ntrain: {max_steps: 1}\nbogus: 1\n", "bogus: unknown key"),
        ("name: x\ntrain: {max_steps: ten}\n", "train.max_steps: Input should be a valid integer"),
        ("name: x\ntrain: {max_steps: 1}\ndata: {source: shards}\n", "data.train is required"),
        ("name: x\n", "train: required field is missing"),
    ],
)
def test_bad_experiment_file(tmp_path, vlp_home, content, expected):
    path = tmp_path / "exp.yaml"
    path.write_text(content)
    result = run_vlp("run", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not vlp_home.exists()


def test_missing_experiment_file(tmp_path, vlp_home):
    result = run_vlp("run", str(tmp_path / "absent.yaml"), cwd=tmp_path)
    assert result.returncode == 2 and "no such experiment file" in result.stderr


def test_missing_data_path_is_reported_by_field(tmp_path, vlp_home):
    path = tmp_path / "exp.yaml"
    path.write_text(f"name: x\ntrain: {{max_steps: 1}}\ndata: {{source: shards, train: {tmp_path / 'nowhere'}}}\n")
    result = run_vlp("run", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "data.train" in result.stderr and "Traceback" not in result.stderr


def test_unknown_option_is_a_usage_error(tmp_path):
    result = run_vlp("run", "--no-such-flag", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_help_imports_no_heavy_libraries(tmp_path):
    import sys

    code = "import sys; from vlp.cli.main import app; heavy = [m for m in ('torch', 'mlflow', 'kfp') if m in sys.modules]; print(heavy)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.strip() == "[]"
