"""A run's train and eval datasets are MLflow dataset inputs named after their folder, with their manifest's
digest; a lost race on MLflow's dataset row is tried again."""

from __future__ import annotations

import hashlib
import json

from mlflow.exceptions import MlflowException

from vlp.platform.tracking.datasets import log_datasets


def make_dataset(root, manifest: dict | None):
    root.mkdir(parents=True)
    (root / "shard-000000.tar").write_bytes(b"x" * 10)
    if manifest is not None:
        (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_datasets_are_logged_with_their_manifest_digest_and_context(tmp_path, vlp_home):
    from vlp.platform.tracking.local_store import prepare_tracking_store
    from vlp.platform.tracking.runs import client, start_run

    prepare_tracking_store(f"sqlite:///{vlp_home / 'mlflow.db'}")
    train = make_dataset(tmp_path / "pets-train", {"samples": 12, "shards": ["shard-000000.tar"]})
    held_out = make_dataset(tmp_path / "pets-eval", None)
    run_id = start_run("datasets", "r", {}, {})
    log_datasets(client(), run_id, {"train": str(train), "eval": str(held_out), "unused": ""})
    inputs = {item.tags[0].value: item.dataset for item in client().get_run(run_id).inputs.dataset_inputs}
    assert set(inputs) == {"train", "eval"}
    assert inputs["train"].name == "pets-train"
    assert inputs["train"].digest == hashlib.sha256((train / "manifest.json").read_bytes()).hexdigest()[:16]
    assert json.loads(inputs["train"].profile) == {"samples": 12, "shards": ["shard-000000.tar"]}
    assert inputs["eval"].digest == hashlib.sha256(str(held_out / "shard-000000.tar").encode()).hexdigest()[:16]


class RacingClient:
    """Loses the race on the dataset row once, as a second run logging the same dataset at once does."""

    def __init__(self):
        self.calls = 0

    def log_inputs(self, run_id, datasets):
        self.calls += 1
        if self.calls == 1:
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name, datasets.digest")


def test_a_lost_race_on_the_dataset_row_is_tried_again(tmp_path):
    racing = RacingClient()
    log_datasets(racing, "run", {"train": str(make_dataset(tmp_path / "d", {"samples": 1}))})
    assert racing.calls == 2
