"""`vlp --version`, shell completion, and read-only commands on a state directory with nothing in it: they
create nothing and print only their answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

VLP = str(Path(sys.executable).parent / "vlp")


def vlp(*args, home: Path, extra_env: dict | None = None):
    env = {**os.environ, "VLP_HOME": str(home), **(extra_env or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([VLP, *args], env=env, cwd=home.parent, capture_output=True, text=True, timeout=120)


def test_version_names_the_release_and_the_commit(tmp_path):
    from importlib.metadata import version

    result = vlp("--version", home=tmp_path / "home")
    assert result.returncode == 0 and result.stderr == ""
    line = result.stdout.strip()
    assert line.startswith(f"vlp {version('vlp')}")
    head = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a checkout: the commit is named
        assert f"(git {head.stdout.strip()}" in line


def test_shell_completion_completes_commands_and_subcommands(tmp_path):
    # Completion is for the shell vlp runs in, found among its parent processes (a pytest started without a shell
    # above it has none): run it from bash, as a user does.
    home = tmp_path / "home"
    env = {**os.environ, "VLP_HOME": str(home)}
    script = subprocess.run(["bash", "-c", '"$0" --show-completion; exit $?', VLP], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert script.returncode == 0 and "_vlp_completion" in script.stdout, script.stderr
    words = vlp(home=tmp_path / "home", extra_env={"_VLP_COMPLETE": "complete_bash", "COMP_WORDS": "vlp runs ", "COMP_CWORD": "2"})
    assert {"list", "show", "compare"} <= set(words.stdout.split())


def test_read_only_commands_on_an_empty_state_dir_create_nothing_and_print_only_the_answer(tmp_path):
    home = tmp_path / "home"
    for args, expected in ((("runs", "list", "--json"), []), (("models", "list", "--json"), [])):
        result = vlp(*args, home=home)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert json.loads(result.stdout) == expected
    table = vlp("runs", "list", home=home)
    assert table.returncode == 0 and table.stderr == "" and "run id" in table.stdout
    missing = vlp("runs", "show", "0" * 32, home=home)
    assert missing.returncode == 2 and missing.stderr.startswith("vlp: error: run '") and len(missing.stderr.splitlines()) == 1
    assert not home.exists()
