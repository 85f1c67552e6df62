"""`arch: video`: shapes, what each temporal part can and cannot see (frame order), tube masking, MOV's frozen
tower, loading an image CLIP into the frame encoder, and the parameters each part adds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vlp.workloads.models import video
from vlp.workloads.models.catalog import load_model_cfg
from vlp.workloads.models.tying import count_parameters
from vlp.workloads.models.video_mae import patchify, tube_mask
from vlp.workloads.models.weights import Weights, load_weights
from vlp.workloads.train.optim import build_optimizer

FRAMES = 4


def build_video(preset: str = "shapes-vit-micro", **options) -> video.VideoCLIP:
    cfg = {**load_model_cfg(preset), "vlp": {"arch": "video", "pooling": "cls", "video": {"frames": FRAMES, **options}}}
    return video.build(cfg)


def clips(count: int = 2, frames: int = FRAMES) -> torch.Tensor:
    return torch.randn(count, frames, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def texts(count: int = 2) -> torch.Tensor:
    return torch.randint(1, 1000, (count, 24), generator=torch.Generator().manual_seed(2))


def randomise(module: torch.nn.Module) -> None:
    """Move the parts that start at zero (temporal projections, time embedding) away from it, as training would."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize(
    "options",
    [{}, {"temporal_pooling": "transformer"}, {"attention": "divided"}, {"masked_video": {"weight": 1.0}}, {"motion_branch": {"enabled": True}}],
    ids=["mean", "transformer", "divided", "masked_video", "motion"],
)
def test_outputs_have_the_contract_shapes(options):
    torch.manual_seed(0)
    model = build_video(**options)
    outputs = model(clips(), texts())
    assert outputs["video_features"].shape == outputs["text_features"].shape == (2, 32)
    assert torch.allclose(outputs["video_features"].norm(dim=-1), torch.ones(2))
    assert outputs["logit_scale"].shape == ()
    assert model.encode_video(clips(3)).shape == (3, 32)
    assert model.encode_image(torch.randn(3, 3, 32, 32)).shape == (3, 32)  # an image is a clip of one frame
    if "masked_video" in options:
        masked = round(16 * 0.75)  # 32 px / patch 8 = 16 patches per frame
        assert outputs["masked_video_prediction"].shape == outputs["masked_video_target"].shape == (2, FRAMES, masked, 8 * 8 * 3)


def test_a_clip_longer_than_the_model_is_refused():
    with pytest.raises(ValueError, match="model.video.frames"):
        build_video().encode_video(clips(frames=FRAMES + 1))


def test_frame_mean_pooling_is_blind_to_frame_order_and_the_temporal_parts_are_not():
    torch.manual_seed(0)
    videos = clips()
    reversed_videos = videos.flip(1)
    mean = build_video()
    randomise(mean)
    assert torch.allclose(mean.encode_video(videos), mean.encode_video(reversed_videos), atol=1e-5)
    for options in ({"temporal_pooling": "transformer"}, {"attention": "divided"}, {"motion_branch": {"enabled": True}}):
        model = build_video(**options)
        randomise(model)
        assert not torch.allclose(model.encode_video(videos), model.encode_video(reversed_videos), atol=1e-3), options


def test_divided_attention_mixes_frames_only_through_its_temporal_step():
    torch.manual_seed(0)
    model = build_video(attention="divided")
    randomise(model)
    videos = clips()
    changed = videos.clone()
    changed[:, -1] += 1.0  # only the last frame changes
    before = model.frame_tokens(videos.flatten(0, 1), FRAMES).view(2, FRAMES, 17, -1)
    after = model.frame_tokens(changed.flatten(0, 1), FRAMES).view(2, FRAMES, 17, -1)
    assert not torch.allclose(before[:, 0], after[:, 0], atol=1e-4)  # the first frame saw the last one
    for block in model.divided.blocks:
        torch.nn.init.zeros_(block.proj.weight)
        torch.nn.init.zeros_(block.proj.bias)
    before = model.frame_tokens(videos.flatten(0, 1), FRAMES).view(2, FRAMES, 17, -1)
    after = model.frame_tokens(changed.flatten(0, 1), FRAMES).view(2, FRAMES, 17, -1)
    assert torch.allclose(before[:, 0], after[:, 0], atol=1e-6)


def test_untrained_divided_attention_embeds_frames_as_the_image_model_does():
    torch.manual_seed(0)
    model = build_video(attention="divided").eval()
    videos = clips()
    with torch.no_grad():
        frames = model.backbone.encode_image(videos.flatten(0, 1)).view(2, FRAMES, -1)
        assert torch.allclose(model.encode_video(videos), torch.nn.functional.normalize(frames, dim=-1).mean(dim=1), atol=1e-5)


def test_patchify_orders_patches_and_pixels_as_the_patch_embedding_reads_them():
    model = build_video(masked_video={"weight": 1.0})
    conv = model.backbone.visual.conv1  # [width, 3, 8, 8], stride 8, no bias
    videos = clips()
    expected = conv(videos.flatten(0, 1)).flatten(2).transpose(1, 2).reshape(2, FRAMES, 16, -1)
    weights = conv.weight.permute(0, 2, 3, 1).reshape(conv.weight.shape[0], -1)  # (row, column, channel)
    assert torch.allclose(patchify(videos, 8) @ weights.T, expected, atol=1e-4)


def test_tube_mask_splits_every_clip_into_visible_and_masked_patches():
    visible, masked = tube_mask(5, 16, 0.75, generator=torch.Generator().manual_seed(0))
    assert visible.shape == (5, 4) and masked.shape == (5, 12)
    for row in range(5):
        assert sorted(visible[row].tolist() + masked[row].tolist()) == list(range(16))
    assert len({tuple(row.tolist()) for row in masked}) > 1  # one draw per clip


def test_the_tube_mask_hides_the_same_patches_in_every_frame():
    torch.manual_seed(0)
    model = build_video(masked_video={"weight": 1.0})
    randomise(model)
    videos = clips()
    torch.manual_seed(5)
    outputs = model.masked_video(videos)
    torch.manual_seed(5)
    visible, masked = tube_mask(2, 16, 0.75)
    patches = patchify(videos, 8)
    # The targets are the masked patches of every frame.
    assert torch.equal(outputs["masked_video_target"], torch.stack([patches[c][:, masked[c]] for c in range(2)]))
    # Changing a masked patch in all frames changes nothing the encoder sees ...
    hidden = videos.clone()
    row, column = divmod(int(masked[0, 0]), 4)
    hidden[0, :, :, row * 8:(row + 1) * 8, column * 8:(column + 1) * 8] += 3.0
    torch.manual_seed(5)
    assert torch.allclose(model.masked_video(hidden)["masked_video_prediction"], outputs["masked_video_prediction"], atol=1e-6)
    # ... while a visible patch changed in one frame does.
    shown = videos.clone()
    row, column = divmod(int(visible[0, 0]), 4)
    shown[0, 1, :, row * 8:(row + 1) * 8, column * 8:(column + 1) * 8] += 3.0
    torch.manual_seed(5)
    assert not torch.allclose(model.masked_video(shown)["masked_video_prediction"][0], outputs["masked_video_prediction"][0], atol=1e-4)


def test_mov_starts_as_the_frozen_clip_and_its_frozen_tower_gets_no_gradient_or_optimizer_state():
    torch.manual_seed(0)
    model = build_video(motion_branch={"enabled": True}, freeze_image_encoder=True)
    videos = clips()
    with torch.no_grad():
        frame_mean = torch.nn.functional.normalize(model.backbone.encode_image(videos.flatten(0, 1)).view(2, FRAMES, -1), dim=-1).mean(dim=1)
        assert torch.allclose(model.encode_video(videos), frame_mean, atol=1e-6)
    randomise(model.motion)
    outputs = model(videos, texts())
    (outputs["video_features"] @ outputs["text_features"].T).sum().backward()
    image_tower = list(model.backbone.visual.parameters())
    assert all(not parameter.requires_grad and parameter.grad is None for parameter in image_tower)
    assert all(parameter.grad is not None for parameter in model.motion.parameters())
    assert all(parameter.grad is not None for parameter in model.backbone.transformer.parameters())
    optimizer = build_optimizer(model, 1e-3, 0.1, fused=False)
    optimizer.step()
    optimised = {id(parameter) for group in optimizer.param_groups for parameter in group["params"]}
    assert not optimised & {id(parameter) for parameter in image_tower}
    assert not set(optimizer.state) & set(image_tower)
    assert model.logit_scale.requires_grad


def test_a_frozen_text_tower_keeps_its_temperature_trainable():
    model = build_video(motion_branch={"enabled": True}, freeze_image_encoder=True, freeze_text_encoder=True)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable == {"backbone.logit_scale"} | {f"motion.{name}" for name, _ in model.motion.named_parameters()}


def test_a_clip_state_dict_loads_into_the_frame_and_text_encoders():
    torch.manual_seed(0)
    image_model = video.clip.build({**load_model_cfg("shapes-vit-micro"), "vlp": {"pooling": "cls"}})
    torch.manual_seed(1)
    model = build_video(attention="divided", temporal_pooling="transformer")
    load_weights(model, Weights("clip.pt", None, image_model.state_dict()), "video")
    assert all(torch.equal(value, model.backbone.state_dict()[key]) for key, value in image_model.state_dict().items())
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.backbone.encode_image(images), image_model.encode_image(images))


def test_divided_attention_and_masked_video_need_a_vit_tower():
    with pytest.raises(ValueError, match="ViT image tower"):
        build_video("shapes-rn-tiny", attention="divided")
    with pytest.raises(ValueError, match="ViT image tower"):
        build_video("shapes-rn-tiny", masked_video={"weight": 1.0})
    assert build_video("shapes-rn-tiny", temporal_pooling="transformer").encode_video(clips()).shape == (2, 64)


def test_each_part_adds_the_parameters_it_should():
    base = count_parameters(build_video())
    assert base == count_parameters(video.clip.build({**load_model_cfg("shapes-vit-micro"), "vlp": {"pooling": "cls"}}))
    width, embed, layers = 32, 32, 2

    def attention(dim: int) -> int:
        return 4 * dim * dim + 4 * dim  # in-projection (q, k, v) and out-projection, with biases

    def block(dim: int, mlp: int) -> int:
        return 2 * 2 * dim + attention(dim) + 2 * dim * mlp + mlp + dim

    divided = layers * (2 * width + attention(width) + width * width + width) + FRAMES * width
    assert count_parameters(build_video(attention="divided")) - base == divided
    seq_transf = FRAMES * embed + 2 * block(embed, 4 * embed)
    assert count_parameters(build_video(temporal_pooling="transformer")) - base == seq_transf
    decoder = width * 64 + 64 + 64 + FRAMES * 16 * 64 + block(64, 256) + 2 * 64 + 64 * 192 + 192
    assert count_parameters(build_video(masked_video={"weight": 1.0})) - base == decoder


def test_cosine_of_matching_pairs_rises_when_trained():
    """A few steps of the video-text contrastive loss on a fixed batch: the model can fit it."""
    from vlp.workloads.objectives.infonce import InfoNCELoss

    torch.manual_seed(0)
    model = build_video(attention="divided", masked_video={"weight": 1.0})
    optimizer = build_optimizer(model, 3e-3, 0.0, fused=False)
    videos, tokens = clips(4), texts(4)
    loss_fn = InfoNCELoss()

    def diagonal() -> float:
        with torch.no_grad():
            outputs = model(videos, tokens)
            return float(F.cosine_similarity(outputs["video_features"], outputs["text_features"]).mean())

    start = diagonal()
    for _ in range(15):
        optimizer.zero_grad()
        outputs = model(videos, tokens)
        loss_fn(outputs["video_features"], outputs["text_features"], outputs["logit_scale"]).backward()
        optimizer.step()
    assert diagonal() > start + 0.1


def test_init_from_a_clip_checkpoint_builds_the_video_model_around_its_weights(tmp_path):
    import json

    from vlp.platform.spec.model import ModelSection
    from vlp.workloads.models.factory import build_model

    image = build_model(ModelSection(arch="clip", preset="shapes-vit-micro"))
    checkpoint = tmp_path / "clip.pt"
    torch.save({"model": image.model.state_dict(), "model_cfg": json.dumps(image.model_cfg)}, checkpoint)
    section = ModelSection(arch="video", init_from=str(checkpoint), video={"frames": FRAMES, "motion_branch": {"enabled": True}, "freeze_image_encoder": True})
    built = build_model(section)
    assert built.arch == "video" and built.model_cfg["vlp"]["video"]["motion_branch"]["enabled"]
    assert all(torch.equal(value, built.model.backbone.state_dict()[key]) for key, value in image.model.state_dict().items())
    assert not any(parameter.requires_grad for parameter in built.model.backbone.visual.parameters())


def test_a_frozen_resnet_tower_keeps_its_batch_norm_statistics_in_training():
    model = build_video("shapes-rn-tiny", motion_branch={"enabled": True}, freeze_image_encoder=True).train()
    norms = [module for module in model.backbone.visual.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    before = [norm.running_mean.clone() for norm in norms]
    model(clips(), torch.randint(1, 1000, (2, 32)))
    assert norms and not any(norm.training for norm in norms)
    assert all(torch.equal(norm.running_mean, saved) for norm, saved in zip(norms, before))
    assert model.motion.training
