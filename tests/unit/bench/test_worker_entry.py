"""The step clock around any training module: steps and memory recorded, the module's own arguments untouched,
and the two open_clip_train compatibility fixes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

TINY_LOOP = textwrap.dedent("""
    import json, sys, torch
    json.dump(sys.argv[1:], open(sys.argv[-1], "w"))
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(5):
        optimizer.zero_grad()
        model(torch.randn(8, 4)).sum().backward()
        optimizer.step()
""")


def test_steps_are_timed_and_arguments_after_the_separator_reach_the_module(tmp_path):
    (tmp_path / "tiny_loop.py").write_text(TINY_LOOP)
    argv_file = tmp_path / "argv.json"
    # --device and --report are worker_entry options too: after `--` they must belong to the module.
    module_args = ["--device", "cuda", "--report", "elsewhere", "--logs", "x", str(argv_file)]
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "VLP_BENCH_LAUNCHED_AT": "1.0"}
    subprocess.run(
        [sys.executable, "-m", "vlp.benchmarks.worker_entry", "--report", str(tmp_path / "report"), "--", "tiny_loop", *module_args],
        check=True, env=env, cwd=tmp_path,
    )
    assert json.loads(argv_file.read_text()) == module_args
    report = json.loads((tmp_path / "report" / "rank-0.json").read_text())
    assert report["steps"] == 5 and report["exit_code"] == 0
    stamps = report["step_seconds"]
    assert len(stamps) == 5 and stamps == sorted(stamps) and stamps[0] > 0
    assert report["startup_seconds"] > 0 and report["rss_mb"] > 10 and report["cuda_allocated_mb"] is None
    cpu = report["step_cpu_seconds"]
    assert len(cpu) == 5 and cpu == sorted(cpu) and cpu[0] > 0


def test_cpu_time_includes_live_children():
    import time

    from vlp.benchmarks.step_clock import tree_cpu_seconds

    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 30\nwhile time.time() < end: pass"])
    try:
        before = tree_cpu_seconds()
        time.sleep(2.0)  # this process sleeps; its child spins
        assert tree_cpu_seconds() - before > 0.1
    finally:
        child.kill()
        child.wait()


def test_usage_without_separator_fails(tmp_path):
    from vlp.benchmarks.worker_entry import main

    with pytest.raises(SystemExit, match="usage"):
        main(["--report", str(tmp_path), "tiny_loop"])


def test_open_clip_compat_drops_end_of_shard_markers_and_cpu_device_ids(tmp_path, monkeypatch):
    import open_clip_train.data as open_clip_data
    import torch
    import torch.distributed as dist

    from vlp.benchmarks.worker_entry import open_clip_compat

    # Registered first, so the originals come back after the test.
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", torch.nn.parallel.DistributedDataParallel)
    monkeypatch.setattr(open_clip_data, "group_by_keys_nothrow", open_clip_data.group_by_keys_nothrow)
    open_clip_compat()

    files = [{"fname": "a.png", "data": b"1", "__url__": "s0"}, {"fname": "a.txt", "data": b"2", "__url__": "s0"}, {},
             {"fname": "b.png", "data": b"3", "__url__": "s1"}, {"fname": "b.txt", "data": b"4", "__url__": "s1"}, {}]
    assert [sample["__key__"] for sample in open_clip_data.group_by_keys_nothrow(iter(files))] == ["a", "b"]

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2), device_ids=[torch.device("cpu")])
        model(torch.randn(3, 2)).sum().backward()
    finally:
        dist.destroy_process_group()
