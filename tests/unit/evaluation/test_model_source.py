"""Models are found by registry alias, checkpoint URI, or config name (+ weights file), with the same weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vlp.platform.errors import VlpUserError
from vlp.workloads.evaluation.model_source import load_model
from vlp.workloads.models.catalog import load_model_cfg
from vlp.workloads.models.factory import build_model_from_cfg
from vlp.workloads.train.checkpoint import Checkpointer

pytestmark = pytest.mark.usefixtures("one_thread")

PRESET = "shapes-rn-tiny"


@pytest.fixture
def trained(tmp_path):
    """A step-5 checkpoint of the preset with non-default weights, as the trainer writes it."""
    torch.manual_seed(7)
    built = build_model_from_cfg(load_model_cfg(PRESET))
    with torch.no_grad():
        built.model.logit_scale.fill_(1.234)
    root = tmp_path / "runs" / "run-abc" / "checkpoints"
    uri = Checkpointer(str(root)).save({"step": 5, "model": built.model.state_dict(), "model_cfg": json.dumps(built.model_cfg)}, 5)
    return built, root, uri


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_checkpoint_file_and_checkpoints_folder(trained):
    built, root, uri = trained
    for reference in (uri, str(root), str(root.parent)):
        loaded = load_model(reference)
        assert same_weights(loaded.built.model, built.model) and loaded.name == "run-abc/step-00000005"
        assert loaded.checkpoint_uri == uri


def test_config_name_with_a_local_weights_file(trained):
    built, _, uri = trained
    loaded = load_model(PRESET, checkpoint_file=uri)
    assert same_weights(loaded.built.model, built.model) and loaded.name == f"{PRESET}:{Path(uri).name}"
    assert load_model(PRESET).checkpoint_uri is None


def test_unknown_references_are_user_errors(tmp_path):
    with pytest.raises(VlpUserError, match="not a registered model"):
        load_model("no-such-model")
    with pytest.raises(VlpUserError, match="no such checkpoint"):
        load_model(str(tmp_path / "missing.pt"))
    with pytest.raises(VlpUserError, match="not a checkpoint"):
        load_model(str(tmp_path))


def test_registered_alias_resolves_to_the_logged_checkpoint(trained, vlp_home, tmp_path):
    import mlflow

    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking.runs import client, ensure_experiment
    from vlp.workloads.serving.pyfunc_model import ClipEmbedder

    built, _, uri = trained
    tracking_uri = default_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = ensure_experiment("registry-test", tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pyfunc.log_model(name="model", python_model=ClipEmbedder(), artifacts={"checkpoint": uri}, registered_model_name="toy-clip", pip_requirements=["vlp"])
    client(tracking_uri).set_registered_model_alias("toy-clip", "champion", info.registered_model_version)
    for reference in ("models:/toy-clip@champion", f"models:/toy-clip/{info.registered_model_version}"):
        loaded = load_model(reference)
        assert same_weights(loaded.built.model, built.model) and loaded.name == reference.removeprefix("models:/")
    with pytest.raises(VlpUserError, match="toy-clip@nobody"):
        load_model("models:/toy-clip@nobody")
