"""open_clip loads what vlp trains, and vlp loads what open_clip saves: `vlp export` writes open_clip's local-dir layout
from a checkpoint, a run or a registered version; open_clip's `create_model_and_transforms("local-dir:DIR")` then
embeds exactly like vlp. Checkpoints and registered versions carry the same files already."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from vlp.platform.errors import VlpUserError
from vlp.platform.spec.model import ModelSection
from vlp.workloads.models.factory import build_model
from vlp.workloads.models.open_clip_export import NotOpenClipError, export_open_clip, open_clip_files_if_buildable
from vlp.workloads.train.checkpoint import Checkpointer

CAPTIONS = ["a small red circle", "a large blue square and a green star", ""]
MAX_EMBEDDING_DIFFERENCE = 1e-5


def trained(section: ModelSection, seed: int = 0):
    """A model whose every weight is off its initial value, so loading is what makes two models agree."""
    torch.manual_seed(seed)
    built = build_model(section)
    with torch.no_grad():
        for parameter in built.model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    built.model.eval()
    return built


def save_as_the_trainer_does(built, root: Path, step: int = 7) -> str:
    state = {"step": step, "model": built.model.state_dict(), "model_cfg": json.dumps(built.model_cfg)}
    return Checkpointer(str(root)).save(state, step, beside=open_clip_files_if_buildable(built.model_cfg, state["model"]))


def photos(count: int = 3) -> list[Image.Image]:
    """Photo-like inputs of several sizes and aspect ratios, so open_clip's own transform does real work."""
    generator = np.random.default_rng(3)
    sizes = [(48, 40), (31, 77), (120, 64)][:count]
    return [Image.fromarray(generator.integers(0, 256, (height, width, 3), dtype=np.uint8)) for width, height in sizes]


def assert_open_clip_embeds_like_vlp(folder: Path, built) -> None:
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    model.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    texts = tokenizer(CAPTIONS)
    assert torch.equal(texts, built.tokenizer(CAPTIONS))
    pixels = torch.stack([preprocess(image) for image in photos()])
    with torch.no_grad():
        pairs = [
            (model.encode_image(pixels), built.model.encode_image(pixels)),
            (model.encode_text(texts), built.model.encode_text(texts)),
        ]
    for theirs, ours in pairs:
        assert theirs.shape == ours.shape
        assert float((theirs - ours).abs().max()) <= MAX_EMBEDDING_DIFFERENCE
    assert torch.equal(model.logit_scale, built.model.logit_scale)


@pytest.mark.parametrize("preset", ["shapes-vit-tiny", "shapes-rn-tiny"])
def test_an_exported_checkpoint_embeds_in_open_clip_as_in_vlp(tmp_path, preset):
    built = trained(ModelSection(arch="clip", preset=preset))
    uri = save_as_the_trainer_does(built, tmp_path / "run" / "checkpoints")
    written = export_open_clip(str(tmp_path / "run"), str(tmp_path / "export"))
    assert [Path(path).name for path in written] == ["open_clip_model.safetensors", "open_clip_config.json"]
    config = json.loads((tmp_path / "export" / "open_clip_config.json").read_text())
    assert config["model_cfg"] == built.model_cfg
    assert config["preprocess_cfg"]["size"] == built.image_size
    assert tuple(config["preprocess_cfg"]["mean"]) == built.preprocess.mean == open_clip.OPENAI_DATASET_MEAN
    assert tuple(config["preprocess_cfg"]["std"]) == built.preprocess.std == open_clip.OPENAI_DATASET_STD
    assert_open_clip_embeds_like_vlp(tmp_path / "export", built)
    # The checkpoint itself already carries the same files, in the folder named after it.
    beside = Path(uri.removesuffix(".pt"))
    for name in ("open_clip_model.safetensors", "open_clip_config.json"):
        assert (beside / name).read_bytes() == (tmp_path / "export" / name).read_bytes()


def test_the_models_preprocess_cfg_goes_into_the_export_over_open_clips_defaults(tmp_path):
    built = trained(ModelSection(arch="clip", preset="shapes-vit-micro"))
    model_cfg = {**built.model_cfg, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "resize_mode": "squash"}}
    files = open_clip_files_if_buildable(model_cfg, built.model.state_dict())
    (tmp_path / "export").mkdir()
    for name, content in files.items():
        (tmp_path / "export" / name).write_bytes(content)
    config = json.loads(files["open_clip_config.json"])
    assert "preprocess_cfg" not in config["model_cfg"]
    assert config["preprocess_cfg"] == {
        "size": 32, "mode": "RGB", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
        "interpolation": "bicubic", "resize_mode": "squash", "fill_color": 0,
    }
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'export'}")
    assert model.visual.preprocess_cfg["resize_mode"] == "squash" and tuple(model.visual.image_mean) == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("section, named", [
    (ModelSection(arch="msclip", preset="shapes-vit-micro"), "arch msclip"),
    (ModelSection(arch="clip", preset="shapes-vit-micro", pooling="ggem"), "arch clip, pooling ggem"),
    (ModelSection(arch="clip", preset="shapes-rn-tiny", pooling="mean"), "arch clip, pooling mean"),
])
def test_vlp_only_architectures_are_refused_by_name_and_nothing_is_written(tmp_path, section, named):
    built = trained(section)
    uri = save_as_the_trainer_does(built, tmp_path / "ckpt")
    assert not Path(uri.removesuffix(".pt")).exists()  # no open_clip files beside a model open_clip cannot build
    with pytest.raises(NotOpenClipError, match=f"a vlp-only model \\({named}\\)") as raised:
        export_open_clip(uri, str(tmp_path / "export"))
    assert "\n" not in str(raised.value) and raised.value.exit_code == 2
    assert not (tmp_path / "export").exists()


def test_vlp_export_command_writes_the_folder_and_refuses_bad_input_with_exit_2(tmp_path, vlp_home):
    from services import VLP

    uri = save_as_the_trainer_does(trained(ModelSection(arch="clip", preset="shapes-vit-micro")), tmp_path / "clip")
    multiway = save_as_the_trainer_does(trained(ModelSection(arch="multiway", preset="shapes-vit-micro")), tmp_path / "multiway")
    script = (
        "import sys\n"
        "from vlp.cli.main import main\n"
        "for argv in sys.argv[1:]:\n"
        "    sys.argv = ['vlp', 'export', *argv.split('|')]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exit:\n"
        "        print('exit', exit.code)\n"
    )
    # One interpreter for the three commands (each would pay the torch and open_clip imports again).
    cases = [f"{uri}|{tmp_path / 'ok'}", f"{multiway}|{tmp_path / 'refused'}", f"{tmp_path / 'nothing.pt'}|{tmp_path / 'missing'}"]
    done = subprocess.run([str(Path(VLP).parent / "python"), "-c", script, *cases], capture_output=True, text=True, timeout=120)
    assert done.stdout.count("wrote ") == 2 and "local-dir:" in done.stdout
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 2 and "arch multiway" in errors[0] and "no such checkpoint" in errors[1], done.stderr
    assert done.stdout.count("exit 2") == 2
    assert sorted(path.name for path in (tmp_path / "ok").iterdir()) == ["open_clip_config.json", "open_clip_model.safetensors"]
    assert not (tmp_path / "refused").exists() and not (tmp_path / "missing").exists()


def test_a_corrupted_or_foreign_checkpoint_is_refused_with_the_reason(tmp_path):
    from vlp.workloads.train.checkpoint import CheckpointError

    uri = Path(save_as_the_trainer_does(trained(ModelSection(arch="clip", preset="shapes-vit-micro")), tmp_path / "ckpt"))
    uri.write_bytes(uri.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="bytes, the manifest recorded"):
        export_open_clip(str(uri), str(tmp_path / "export"))
    with pytest.raises(CheckpointError, match="no checkpoint passes its check"):
        export_open_clip(str(tmp_path / "ckpt"), str(tmp_path / "export"))
    foreign = tmp_path / "weights.pt"
    torch.save({"visual.proj": torch.zeros(2)}, foreign)
    with pytest.raises(VlpUserError, match="not a vlp checkpoint"):
        export_open_clip(str(foreign), str(tmp_path / "export"))
    (tmp_path / "file").write_text("")
    with pytest.raises(VlpUserError, match="is a file"):
        export_open_clip(str(foreign), str(tmp_path / "file"))
    assert not (tmp_path / "export").exists()


def test_a_registered_version_and_a_run_export_and_carry_the_open_clip_files(tmp_path, vlp_home):
    import mlflow

    from vlp.platform.layout import RunLayout
    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking.runs import client, ensure_experiment
    from vlp.workloads.serving.pyfunc_model import log_embedder
    from vlp.workloads.train.checkpoint import load_checkpoint

    built = trained(ModelSection(arch="clip", preset="shapes-rn-tiny"))
    tracking_uri = default_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    storage_root = tmp_path / "storage"
    with mlflow.start_run(experiment_id=ensure_experiment("export-test", tracking_uri)) as run:
        mlflow.log_param("storage_root", str(storage_root))
        uri = save_as_the_trainer_does(built, Path(RunLayout(str(storage_root), run.info.run_id).checkpoints))
        info = log_embedder(load_checkpoint(uri), "exported-clip")
    registry = client(tracking_uri)
    registry.set_registered_model_alias("exported-clip", "champion", info.registered_model_version)

    # The registered version's own files load in open_clip as they are.
    source = registry.get_model_version_download_uri("exported-clip", info.registered_model_version)
    carried = mlflow.artifacts.download_artifacts(f"{source}/artifacts/open_clip", dst_path=str(tmp_path / "carried"))
    assert_open_clip_embeds_like_vlp(Path(carried), built)
    for reference in ("models:/exported-clip@champion", f"models:/exported-clip/{info.registered_model_version}", run.info.run_id):
        folder = tmp_path / reference.replace("/", "_").replace(":", "_").replace("@", "_")
        export_open_clip(reference, str(folder))
        assert (folder / "open_clip_model.safetensors").read_bytes() == (Path(carried) / "open_clip_model.safetensors").read_bytes()
    assert_open_clip_embeds_like_vlp(folder, built)
    with pytest.raises(VlpUserError, match="exported-clip@nobody"):
        export_open_clip("models:/exported-clip@nobody", str(tmp_path / "none"))
    with pytest.raises(VlpUserError, match="no such run"):
        export_open_clip("0" * 32, str(tmp_path / "none"))
    # A run whose experiment named no storage root wrote to the profile's: the caller names it.
    with mlflow.start_run(experiment_id=ensure_experiment("export-test", tracking_uri)) as elsewhere:
        mlflow.log_param("storage_root", "")
    profile_root = tmp_path / "profile-storage"
    save_as_the_trainer_does(built, Path(RunLayout(str(profile_root), elsewhere.info.run_id).checkpoints))
    with pytest.raises(VlpUserError, match="no checkpoints at .*name that root"):
        export_open_clip(elsewhere.info.run_id, str(tmp_path / "none"))
    export_open_clip(elsewhere.info.run_id, str(tmp_path / "elsewhere"), storage_root=str(profile_root))
    assert (tmp_path / "elsewhere" / "open_clip_model.safetensors").read_bytes() == (Path(carried) / "open_clip_model.safetensors").read_bytes()
    assert not (tmp_path / "none").exists()


def test_a_folder_open_clip_saved_starts_a_vlp_model(tmp_path):
    """The other direction: open_clip's own model, saved as open_clip saves for the hub (its config writer, weights
    as safetensors), is `model.init_from: local-dir:DIR`, preprocessing included; so is a vlp export."""
    from open_clip.push_to_hf_hub import save_config_for_hf
    from safetensors.torch import save_file

    source = trained(ModelSection(arch="clip", preset="shapes-vit-micro"))
    siglip_like = {**source.model_cfg, "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3, "resize_mode": "squash"}}
    exported = tmp_path / "exported"
    exported.mkdir()
    for name, content in open_clip_files_if_buildable(siglip_like, source.model.state_dict()).items():
        (exported / name).write_bytes(content)
    theirs = open_clip.create_model(f"local-dir:{exported}")
    with torch.no_grad():
        theirs.logit_scale.fill_(2.5)
    folder = tmp_path / "saved-by-open-clip"
    folder.mkdir()
    save_file(theirs.state_dict(), folder / "open_clip_model.safetensors")
    save_config_for_hf(theirs, folder / "open_clip_config.json", model_config=source.model_cfg)
    for reference in (folder, exported):
        built = build_model(ModelSection(arch="clip", init_from=f"local-dir:{reference}"))
        assert {key: value for key, value in built.model_cfg.items() if key != "preprocess_cfg"} == source.model_cfg
        assert built.preprocess.mean == (0.5, 0.5, 0.5) and built.preprocess.resize_mode == "squash"
    ours = build_model(ModelSection(arch="clip", init_from=f"local-dir:{folder}")).model.state_dict()
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours[key], value), key
    pacl = build_model(ModelSection(arch="pacl", init_from=f"local-dir:{folder}"))
    assert torch.equal(pacl.model.backbone.logit_scale, theirs.logit_scale)


def test_a_folder_that_is_not_open_clips_is_a_one_line_error(tmp_path):
    from vlp.platform.errors import SpecError

    with pytest.raises(SpecError, match="no open_clip_config.json there"):
        build_model(ModelSection(arch="clip", init_from=f"local-dir:{tmp_path}"))
    (tmp_path / "open_clip_config.json").write_text("{}")
    with pytest.raises(SpecError, match="not an open_clip config"):
        build_model(ModelSection(arch="clip", init_from=f"local-dir:{tmp_path}"))


def test_export_reads_and_writes_s3(tmp_path, s3_env, s3_bucket):
    import uuid

    import boto3

    built = trained(ModelSection(arch="clip", preset="shapes-vit-micro"))
    prefix = f"export-test/{uuid.uuid4().hex}"
    state = {"step": 3, "model": built.model.state_dict(), "model_cfg": json.dumps(built.model_cfg)}
    Checkpointer(f"s3://{s3_bucket}/{prefix}/run/checkpoints").save(state, 3)
    written = export_open_clip(f"s3://{s3_bucket}/{prefix}/run", f"s3://{s3_bucket}/{prefix}/export")
    assert written == [f"s3://{s3_bucket}/{prefix}/export/open_clip_model.safetensors", f"s3://{s3_bucket}/{prefix}/export/open_clip_config.json"]
    s3 = boto3.client("s3", endpoint_url=s3_env.url, region_name="us-east-1")
    local = tmp_path / "downloaded"
    local.mkdir()
    for uri in written:
        name = uri.rsplit("/", 1)[1]
        s3.download_file(s3_bucket, f"{prefix}/export/{name}", str(local / name))
    assert_open_clip_embeds_like_vlp(local, built)


def test_a_model_with_an_hf_tokenizer_exports_it_and_open_clip_tokenizes_alike(tmp_path):
    from tokenizer_corpus import tiny_hf_tokenizer
    from vlp.workloads.models.catalog import load_model_cfg
    from vlp.workloads.models.factory import build_model_from_cfg

    tokenizer_dir = tiny_hf_tokenizer("wordpiece", str(tmp_path / "tokenizer"))
    model_cfg = load_model_cfg("shapes-vit-tiny")
    model_cfg["text_cfg"] = {**model_cfg["text_cfg"], "hf_tokenizer_name": tokenizer_dir, "vocab_size": 300, "context_length": 16}
    built = build_model_from_cfg(model_cfg)
    built.model.eval()
    save_as_the_trainer_does(built, tmp_path / "checkpoints")
    export_open_clip(str(tmp_path / "checkpoints"), str(tmp_path / "export"))
    assert (tmp_path / "export" / "tokenizer.json").is_file()
    assert_open_clip_embeds_like_vlp(tmp_path / "export", built)
