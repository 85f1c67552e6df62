"""Training settings that cannot work are refused by `vlp run` before anything starts: one line naming the field,
exit 2."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[3] / "experiments" / "quickstart.yaml"


def run_vlp(*args: str) -> tuple[int, str]:
    from vlp.cli.main import main

    err = io.StringIO()
    argv, sys.argv = sys.argv, ["vlp", *args]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = argv
    return code, err.getvalue()


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (("train.accum_steps=3",), "train.accum_steps 3 does not divide the 128 samples each of the 2 processes"),
        (("train.accum_steps=2",), "train.accum_steps 2: the model normalises over the batch"),
    ],
    ids=["accum-does-not-divide", "accum-with-batch-norm"],
)
def test_run_refuses_in_one_line(overrides, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run_vlp("run", str(QUICKSTART), *(part for value in overrides for part in ("--set", value)))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("vlp: error: ") and fragment in lines[0], err
