"""Shared pieces of the cluster-mode tests: the canaries, a base profile, and the CLI run in-process."""

from __future__ import annotations

import contextlib
import copy
import io
import sys
from pathlib import Path

from vlp.platform.image_lock import lock_sha256

REPO = Path(__file__).resolve().parents[3]
EXPERIMENT = REPO / "experiments" / "quickstart.yaml"
CANARY = "vlpCanary-Zq81Kd0Wm3Tx5Ry7-not-a-real-secret"
TOKEN = "vlpTokenCanary-Jw4Nv6Bq9Hs2Lp0-not-a-real-token"
CANARY_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")

# The GPU profile below sends training pods to A100 nodes: a submission must ask for GPUs.
GPU_SHAPE = ("--set", "resources.gpus_per_node=1")

BASE_PROFILE = {
    "name": "gpu",
    "namespace": "vlp",
    "image": "registry.example.com/ml/vlp:1.2.3",
    # The image was built from this checkout's lock (as the Containerfile records it).
    "image_lock_sha256": lock_sha256(),
    "storage_root": "s3://vlp-test-bucket/vlp",
    "kfp": {"host": "http://127.0.0.1:9", "namespace": "vlp", "service_account": "vlp-pipeline", "auth": {"token_env": "VLP_KFP_TOKEN"}},
    "mlflow": {"tracking_uri": "http://vlp-mlflow.vlp.svc.cluster.local:5000", "credentials_secret": {"name": "vlp-mlflow-pipelines"}},
    "s3": {"endpoint_url": "http://minio.storage:9000", "region": "eu-west-1", "credentials_secret": {"name": "vlp-s3"}},
    "torchx": {"scheduler": "kubernetes", "scheduler_args": {"queue": "vlp-default", "service_account": "vlp-trainer", "priority_class": "research-high"}},
    "team_queues": {"vision": "vlp-vision"},
    "gpu_resource": "nvidia.com/gpu",
    "accelerator_type": "NVIDIA-A100-SXM4-80GB",
    "node_selector": {"node.kubernetes.io/instance-type": "p4d.24xlarge"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "steps": {"node_selector": {"pool": "cpu"}, "tolerations": [{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}],
              "timeout_seconds": 1800, "train_timeout_seconds": 86400, "retries": 3},
}


def profile_document(**changes) -> dict:
    """BASE_PROFILE with top-level keys replaced (nested dicts replaced whole)."""
    document = copy.deepcopy(BASE_PROFILE)
    document.update(copy.deepcopy(changes))
    return document


def run_vlp(*args: str) -> tuple[int, str, str]:
    """Run the CLI in this process through its real entry point (error boundary included)."""
    from vlp.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["vlp", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("vlp: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
