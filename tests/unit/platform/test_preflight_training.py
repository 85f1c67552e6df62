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


@pytest.mark.parametrize(
    ("arch", "fragment"),
    [("transvg", "has no referring expressions with boxes"), ("video", "has no video file per sample")],
)
def test_run_refuses_data_the_architecture_cannot_train_on(arch, fragment, tmp_path, monkeypatch, vlp_home):
    """Image-text pairs without referring expressions (an img2dataset-style shard) cannot train grounding or video."""
    import tarfile

    shards = tmp_path / "pairs"
    shards.mkdir()
    with tarfile.open(shards / "shard-000000.tar", "w") as archive:
        for name, data in (("0.jpg", b"\xff\xd8"), ("0.txt", b"a photo"), ("0.json", b'{"caption": "a photo"}')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(f"name: wrong-data\ndata: {{source: shards, train: {shards}}}\nmodel: {{arch: {arch}, preset: shapes-vit-micro}}\ntrain: {{batch_size: 8, max_steps: 2}}\n")
    monkeypatch.chdir(tmp_path)
    code, err = run_vlp("run", str(experiment))
    assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    assert not (vlp_home / "mlruns").exists() or not any((vlp_home / "mlruns").rglob("meta.yaml"))
