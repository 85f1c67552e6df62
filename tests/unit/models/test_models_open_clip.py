"""`clip` is open_clip's CLIP: a vlp checkpoint loads into open_clip.create_model with the same config and gives the
same embeddings; and open_clip configs (+ optional weights file), vlp checkpoints and registered versions all work
as `model.init_from`."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from vlp.platform.errors import SpecError
from vlp.platform.spec.model import ModelSection
from vlp.workloads.models.factory import build_model
from vlp.workloads.models.weights import resolve_weights
from vlp.workloads.train.checkpoint import Checkpointer, load_checkpoint

TINY_OPEN_CLIP = "vlp-test-vit-micro"
CAPTIONS = ["a small red circle", "a large blue square and a green star"]


def embeddings(model, image_size: int, tokenizer):
    torch.manual_seed(1)
    images = torch.randn(2, 3, image_size, image_size)
    model.eval()
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokenizer(CAPTIONS))


def save_checkpoint(built, root) -> str:
    return Checkpointer(str(root)).save({"step": 1, "model": built.model.state_dict(), "model_cfg": json.dumps(built.model_cfg)}, 1)


@pytest.mark.parametrize("preset, pooling", [("shapes-vit-micro", "cls"), ("shapes-vit-micro", "mean"), ("shapes-rn-tiny", "cls")])
def test_a_vlp_clip_checkpoint_is_an_open_clip_checkpoint(tmp_path, preset, pooling):
    torch.manual_seed(0)
    built = build_model(ModelSection(arch="clip", preset=preset, pooling=pooling))
    with torch.no_grad():  # move every weight off its initial value, so loading is what makes them equal
        for parameter in built.model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    state = load_checkpoint(save_checkpoint(built, tmp_path / "ckpt"))
    model_cfg = json.loads(state["model_cfg"])
    assert "vlp" not in model_cfg
    folder = tmp_path / "open_clip"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    torch.save(state["model"], folder / "open_clip_pytorch_model.bin")
    reference = open_clip.create_model(f"local-dir:{folder}")
    ours = embeddings(built.model, built.image_size, built.tokenizer)
    theirs = embeddings(reference, built.image_size, built.tokenizer)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.fixture
def tiny_open_clip_config(tmp_path):
    """An open_clip config registered by name (open_clip's own ViT-B-32 would work the same, only slower)."""
    from vlp.workloads.models.catalog import load_model_cfg

    path = tmp_path / f"{TINY_OPEN_CLIP}.json"
    path.write_text(json.dumps(load_model_cfg("shapes-vit-micro")))
    open_clip.add_model_config(path)
    return TINY_OPEN_CLIP


def test_open_clip_config_and_weights_file_as_init_from(tmp_path, tiny_open_clip_config):
    reference = open_clip.create_model(tiny_open_clip_config)
    with torch.no_grad():
        reference.logit_scale.fill_(3.0)
    weights = tmp_path / "weights.pt"
    torch.save(reference.state_dict(), weights)
    built = build_model(ModelSection(arch="clip", init_from={"open_clip": tiny_open_clip_config, "checkpoint": str(weights)}))
    tokenizer = open_clip.get_tokenizer(tiny_open_clip_config)
    for a, b in zip(embeddings(built.model, 32, tokenizer), embeddings(reference, 32, tokenizer)):
        assert torch.allclose(a, b, atol=1e-6)
    assert float(built.model.logit_scale) == 3.0
    random = build_model(ModelSection(arch="clip", init_from={"open_clip": tiny_open_clip_config}))
    assert sum(p.numel() for p in random.model.parameters()) == sum(p.numel() for p in reference.parameters())


def test_pacl_freezes_an_open_clip_backbone_and_trains_its_head(tmp_path, tiny_open_clip_config):
    reference = open_clip.create_model(tiny_open_clip_config)
    weights = tmp_path / "weights.pt"
    torch.save(reference.state_dict(), weights)
    built = build_model(ModelSection(arch="pacl", pacl={"freeze_backbone": True}, init_from={"open_clip": tiny_open_clip_config, "checkpoint": str(weights)}))
    trainable = {name for name, parameter in built.model.named_parameters() if parameter.requires_grad}
    assert trainable == {"backbone.logit_scale", "patch_embedder.fc1.weight", "patch_embedder.fc1.bias", "patch_embedder.fc2.weight", "patch_embedder.fc2.bias"}
    assert torch.equal(built.model.backbone.visual.proj, reference.visual.proj)


def test_vlp_checkpoint_as_init_from_and_as_a_pacl_backbone(tmp_path):
    source = build_model(ModelSection(arch="clip", preset="shapes-vit-micro"))
    uri = save_checkpoint(source, tmp_path / "ckpt")
    again = build_model(ModelSection(arch="clip", init_from=uri))
    for key, value in source.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[key], value), key
    pacl = build_model(ModelSection(arch="pacl", init_from=uri))
    assert torch.equal(pacl.model.backbone.visual.conv1.weight, source.model.visual.conv1.weight)
    with pytest.raises(SpecError, match="holds a clip model; model.arch is msclip"):
        build_model(ModelSection(arch="msclip", init_from=uri))


def test_registered_version_as_init_from(tmp_path, vlp_home):
    """A version laid out as the register step lays it out (the checkpoint under artifacts/), found by alias."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking.runs import ensure_experiment

    source = build_model(ModelSection(arch="clip", preset="shapes-vit-micro"))
    files = tmp_path / "model" / "artifacts"
    files.mkdir(parents=True)
    state = load_checkpoint(save_checkpoint(source, tmp_path / "ckpt"))
    torch.save({"model": state["model"], "model_cfg": state["model_cfg"], "step": 1}, files / "model.pt")
    client = MlflowClient(default_tracking_uri())
    run = client.create_run(ensure_experiment("init-from"))
    client.log_artifacts(run.info.run_id, str(tmp_path / "model"), "model")
    client.create_registered_model("tiny")
    version = client.create_model_version("tiny", f"{run.info.artifact_uri}/model", run.info.run_id)
    client.set_registered_model_alias("tiny", "champion", version.version)
    weights = resolve_weights("models:/tiny@champion")
    assert weights.model_cfg == source.model_cfg
    built = build_model(ModelSection(arch="clip", init_from="models:/tiny@champion"))
    assert torch.equal(built.model.visual.proj, source.model.visual.proj)
    with pytest.raises(SpecError, match="models:/tiny@nobody"):
        resolve_weights("models:/tiny@nobody")
    assert mlflow.get_tracking_uri()  # the client above used the vlp_home store, not a global default


def test_open_clip_config_and_weights_file_as_the_evaluated_model(tmp_path, tiny_open_clip_config):
    """What `vlp eval` and the DG workload load when given a config name and a weights file."""
    from vlp.workloads.evaluation.encode import encode_texts
    from vlp.workloads.evaluation.model_source import load_model

    reference = open_clip.create_model(tiny_open_clip_config)
    weights = tmp_path / "weights.pt"
    torch.save(reference.state_dict(), weights)
    loaded = load_model(tiny_open_clip_config, str(weights))
    tokenizer = open_clip.get_tokenizer(tiny_open_clip_config)
    for a, b in zip(embeddings(loaded.built.model, loaded.built.image_size, tokenizer), embeddings(reference, 32, tokenizer)):
        assert torch.allclose(a, b, atol=1e-6)
    texts = encode_texts(loaded.built, CAPTIONS, batch_size=2)
    assert torch.allclose(texts, torch.nn.functional.normalize(reference.encode_text(tokenizer(CAPTIONS)), dim=-1), atol=1e-6)
