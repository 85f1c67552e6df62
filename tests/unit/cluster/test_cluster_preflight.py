"""One preflight for `vlp run` and `vlp submit`: what `run` checks, `submit` checks too, plus what only a cluster
cares about (paths its pods can reach, GPUs on GPU nodes, the gang against its queue, the image's lock). Each
refusal is one line naming the field, exit 2, and nothing is written or submitted."""

from __future__ import annotations

import pytest
from cluster_harness import EXPERIMENT, GPU_SHAPE, assert_one_line_error, profile_document, run_vlp

from vlp.pipelines.steps.launching import job_name
from vlp.platform.cluster_checks import DNS_1035_LABEL


def _dry_run(tmp_path, *args: str) -> tuple[int, str, str]:
    return run_vlp("submit", str(EXPERIMENT), "--profile", "gpu", *args, "--dry-run", "--out", str(tmp_path / "out"))


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (("--set", "data.source=shards", "--set", "data.train=/home/me/shards", "--set", "data.eval=s3://vlp-data/eval",
          "--set", "register.gates=[]", "--set", "headline=[]"),
         ("data.train: /home/me/shards", "pods of profile gpu")),
        (("--set", "storage_root=/tmp/vlp-local-root"), ("storage_root: /tmp/vlp-local-root", "the profile's storage_root")),
        (("--set", "model.init_from=./checkpoints/last.pt"), ("model.init_from: ./checkpoints/last.pt",)),
        (("--set", "train.batch_size=100", "--set", "resources.nodes=3"), ("train.batch_size 100", "3 training processes")),
        (("--set", "model.preset=no-such-preset"), ("model.preset", "no-such-preset")),
        (("--set", "model.arch=msclip"), ("model:", "ViT")),
        ((), ("resources.gpus_per_node: 0", "accelerator_type NVIDIA-A100-SXM4-80GB")),
        (("--set", "resources.gpus_per_node=8", "--set", "resources.procs_per_node=2", "--set", "resources.nodes=1"), ("resources.procs_per_node: 2",)),
    ],
    ids=["local-data", "local-storage-root", "local-weights", "batch", "preset", "model-does-not-build", "gpu-nodes-without-gpus", "procs-per-gpu"],
)
def test_submit_refuses_in_one_line_and_writes_nothing(write_profiles, tmp_path, overrides, fragments):
    write_profiles(profile_document())
    code, out, err = _dry_run(tmp_path, *overrides)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "out").exists()


def test_run_makes_the_same_spec_checks(tmp_path, monkeypatch):
    code, _, err = run_vlp("run", str(EXPERIMENT), "--set", "model.preset=no-such-preset")
    assert_one_line_error(code, err, "model.preset", "no-such-preset")
    code, _, err = run_vlp("run", str(EXPERIMENT), "--set", "train.batch_size=255")
    assert_one_line_error(code, err, "train.batch_size 255")


def test_a_gang_larger_than_its_queue_is_refused(write_profiles, tmp_path):
    write_profiles(profile_document(queue_capability={"vlp-default": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "2"}}))
    code, _, err = _dry_run(tmp_path, *GPU_SHAPE, "--set", "resources.nodes=2")
    assert code == 0, err
    code, _, err = _dry_run(tmp_path, "--set", "resources.gpus_per_node=2", "--set", "resources.procs_per_node=2", "--set", "resources.nodes=2")
    assert_one_line_error(code, err, "queue vlp-default", "nvidia.com/gpu 4", "capability 2")
    write_profiles(profile_document(queue_capability={"vlp-default": {"cpu": "16", "memory": "64Gi"}}))
    code, _, err = _dry_run(tmp_path, *GPU_SHAPE)
    assert_one_line_error(code, err, "queue vlp-default", "grants none")


def test_an_image_built_from_another_lock_is_refused_unless_allowed(write_profiles, tmp_path):
    write_profiles(profile_document(image_lock_sha256="0" * 64))
    code, _, err = _dry_run(tmp_path, *GPU_SHAPE)
    assert_one_line_error(code, err, "image_lock_sha256", "000000000000", "--allow-drift")
    assert not (tmp_path / "out").exists()
    code, _, err = _dry_run(tmp_path, *GPU_SHAPE, "--allow-drift")
    assert code == 0 and "built from another lock" in err


@pytest.mark.parametrize("experiment", ["3shapes", "0", "-", "a" * 63, "shapes"])
def test_job_names_are_dns_1035_labels(experiment):
    # Volcano's svc plugin names a Service after the job: it must start with a letter.
    name = job_name(experiment, "train", "0123456789abcdef")
    assert DNS_1035_LABEL.match(name) and len(name) <= 36, name
    assert job_name(experiment, "train", "0123456789abcdef") == name, "the same for every attempt"
