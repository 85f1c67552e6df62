"""The video battery on toy clips: a model that sees motion gets every class family right, a frame-mean image model
gets appearance right and cannot tell mirrored motions apart, and the results name what they measured."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image
from video_toy import MOTIONS, SHAPES, FrameClip, MotionClip, ToySource, built, frames_of, toy_clips

from vlp.platform.spec.evaluation import EvalSection
from vlp.workloads.evaluation.publish import flat_metrics
from vlp.workloads.evaluation.video_suite import clip_encoder, order_pair_accuracy, per_class_recall, run_video_suite

pytestmark = pytest.mark.usefixtures("one_thread")

SECTION = EvalSection(probe_split=(0.5, 0.25), batch_size=7)


def results_by(output) -> dict[tuple[str, str], dict]:
    return {(result["task"], result["dataset"]): result["metrics"] for result in output.results}


def test_a_model_that_sees_motion_gets_every_family_and_pair_right_and_draws_its_plots(tmp_path):
    source = ToySource(toy_clips(), motions=MOTIONS, shapes=SHAPES)
    output = run_video_suite(built(MotionClip(), "video"), source, SECTION, "motion-clip", plot_dir=tmp_path, clip_frames=frames_of)
    metrics = results_by(output)
    for family in ("motion", "shape", "colour"):
        zeroshot = metrics[("zeroshot_classification", f"toy-video-{family}")]
        assert zeroshot["acc1"] == 1.0 and zeroshot["mean_per_class_recall"] == 1.0
        assert metrics[("linear_probe", f"toy-video-{family}")]["lp_acc1"] == 1.0
    motion = metrics[("zeroshot_classification", "toy-video-motion")]
    assert motion["pair_acc1/moving_left_vs_moving_right"] == 1.0 and motion["order_pair_acc1"] == 1.0
    assert motion["recall/moving_left"] == 1.0 and set(k for k in motion if k.startswith("recall/")) == {f"recall/{m.replace(' ', '_')}" for m in MOTIONS}
    assert math.isnan(metrics[("zeroshot_classification", "toy-video-colour")]["acc5"])
    # Each caption is shared by exactly one clip here: text→video and video→text are both exact at k=1.
    retrieval = metrics[("zeroshot_retrieval", "toy-video")]
    assert retrieval["video_retrieval_recall@1"] == 1.0 and retrieval["text_retrieval_recall@1"] == 1.0
    # A clip and its reverse embed as the opposite motion: far from 1.
    assert metrics[("temporal_order", "toy-video")]["reversed_cosine"] < 0.9
    assert output.skipped == {"zeroshot_segmentation": "not measured on clips", "domain_accuracy": "not measured on clips"}
    names = sorted(path.name for path in output.plots)
    assert "toy-video-clip-frames.png" in names and "toy-video-motion-confusion-matrix.png" in names
    with Image.open(tmp_path / "toy-video-clip-frames.png") as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_a_frame_mean_image_model_reads_appearance_but_not_the_direction_of_mirrored_clips():
    output = run_video_suite(built(FrameClip(), "clip"), ToySource(toy_clips()), SECTION, "frame-clip", clip_frames=frames_of)
    metrics = results_by(output)
    assert metrics[("zeroshot_classification", "toy-video-colour")]["acc1"] == 1.0
    assert metrics[("zeroshot_classification", "toy-video-shape")]["acc1"] == 1.0
    motion = metrics[("zeroshot_classification", "toy-video-motion")]
    # A left clip is a right clip played backwards: same frames, same mean, same prompt scores — one of the two is wrong.
    assert motion["pair_acc1/moving_left_vs_moving_right"] == 0.5
    assert motion["pair_acc1/moving_up_vs_moving_down"] == 0.5 and motion["pair_acc1/growing_vs_shrinking"] == 0.5
    assert metrics[("temporal_order", "toy-video")]["reversed_cosine"] == pytest.approx(1.0)
    # Even a probe trained on the features cannot separate them (at best one per mirrored pair).
    assert metrics[("linear_probe", "toy-video-motion")]["lp_acc1"] <= 0.75


def test_frame_mean_is_clip4clip_meanp():
    model = FrameClip()
    videos = torch.stack([clip.frames for clip in toy_clips()[:4]]).float() / 255
    pooled = clip_encoder(model)(videos)
    frames = torch.nn.functional.normalize(model.encode_image(videos.flatten(0, 1)), dim=-1).view(4, videos.shape[1], -1)
    assert torch.allclose(pooled, frames.mean(dim=1))
    assert clip_encoder(MotionClip()).__func__ is MotionClip.encode_video


def test_per_class_and_pair_scores_count_the_right_clips():
    classnames = ("moving left", "moving right", "rotating")
    labels = torch.tensor([0, 0, 1, 1, 2])
    logits = torch.tensor([[2.0, 1, 0], [0, 1, 3], [1, 2, 0], [3, 1, 0], [0, 0, 1]])
    assert per_class_recall(logits.argmax(dim=1), labels, classnames) == {"recall/moving_left": 0.5, "recall/moving_right": 0.5, "recall/rotating": 1.0}
    # Pair choice ignores the third class: clip 1 picks right over left (wrong), clip 3 picks left (wrong).
    assert order_pair_accuracy(logits, labels, classnames) == {"pair_acc1/moving_left_vs_moving_right": 0.5, "order_pair_acc1": 0.5}


def test_metric_names_follow_the_prefix_slug_key_scheme():
    output = run_video_suite(built(MotionClip(), "video"), ToySource(toy_clips()), EvalSection(linear_probe=False), "m", dataset_name="shapes-video", clip_frames=frames_of)
    names = set(flat_metrics(output.results))
    assert {"zeroshot/shapes-video-motion/acc1", "zeroshot/shapes-video-motion/pair_acc1/moving_left_vs_moving_right",
            "zeroshot/shapes-video-shape/recall/square", "retrieval/shapes-video/video_retrieval_recall_at_5",
            "temporal_order/shapes-video/reversed_cosine", "modality_gap/shapes-video/gap"} <= names


@pytest.fixture(scope="module")
def generated_shards(tmp_path_factory):
    """Moving-shapes clips from the generator, as H.264 in webdataset shards with their manifest."""
    from vlp.workloads.data.shapes_video import VideoShapesParams, generate_shapes_video

    root = tmp_path_factory.mktemp("shapes-video")
    generate_shapes_video(VideoShapesParams(samples=12, seed=0, image_size=32, frames=8, shard_size=6), str(root), processes=1)
    return root


@pytest.mark.parametrize("arch, options, order_blind", [
    ("clip", None, True), ("video", {}, True), ("video", {"temporal_pooling": "transformer"}, False),
], ids=["image-clip-frame-mean", "video-mean", "video-transformer"])
def test_real_models_read_generated_clips_and_only_the_temporal_one_sees_order(generated_shards, arch, options, order_blind):
    from vlp.workloads.data.readers import open_source
    from vlp.workloads.models.catalog import load_model_cfg
    from vlp.workloads.models.factory import build_model_from_cfg

    torch.manual_seed(0)
    cfg = load_model_cfg("shapes-vit-micro")
    if options is not None:
        cfg = {**cfg, "vlp": {"arch": "video", "pooling": "cls", "video": {"frames": 4, **options}}}
    model = build_model_from_cfg(cfg)
    with torch.no_grad():  # move the temporal parts off their zero start, as training would
        for name, parameter in model.model.named_parameters():
            if "temporal_pooling" in name:
                parameter.add_(0.3 * torch.randn_like(parameter))
    source = open_source(str(generated_shards), "video")
    output = run_video_suite(model, source, EvalSection(linear_probe=False, plots=False), "micro", dataset_name="shapes-video")
    metrics = results_by(output)
    motion = metrics[("zeroshot_classification", "shapes-video-motion")]
    assert 0.0 <= motion["acc1"] <= 1.0 and set(motion) >= {"acc5", "mean_per_class_recall"}
    assert {dataset for task, dataset in metrics if task == "zeroshot_classification"} == {"shapes-video-motion", "shapes-video-shape", "shapes-video-colour"}
    assert output.results[0]["num_images"] == 12
    assert 0.0 <= metrics[("zeroshot_retrieval", "shapes-video")]["video_retrieval_recall@10"] <= 1.0
    reversed_cosine = metrics[("temporal_order", "shapes-video")]["reversed_cosine_min"]
    assert (reversed_cosine > 1 - 1e-5) is order_blind


def test_image_records_are_refused_in_one_line():
    from vlp.platform.errors import VlpUserError
    from vlp.workloads.data.readers import EvalRecord

    class ImageSource:
        name, classnames = "images", ()

        def read(self):
            return iter([EvalRecord(key="000001", image=b"png", caption="a red circle")])

    with pytest.raises(VlpUserError, match="000001 is not a video clip"):
        run_video_suite(built(MotionClip(), "video"), ImageSource(), SECTION, "m")


def test_run_suite_sends_clips_to_the_video_battery_and_a_video_model_on_stills_to_the_image_one(generated_shards, tmp_path):
    from colour_toy import write_shards

    from vlp.workloads.data.readers import ReaderOptions, open_source
    from vlp.workloads.evaluation.suite import run_suite
    from vlp.workloads.models.catalog import load_model_cfg
    from vlp.workloads.models.factory import build_model_from_cfg

    video_model = build_model_from_cfg({**load_model_cfg("shapes-vit-micro"), "vlp": {"arch": "video", "pooling": "cls", "video": {"frames": 4}}})
    section = EvalSection(linear_probe=False, plots=False)
    stills = open_source(str(write_shards(tmp_path / "stills", 12)), options=ReaderOptions(label_field="colour"))
    on_stills = run_suite(video_model, stills, section, "video-micro")
    assert {(result["task"], result["dataset"]) for result in on_stills.results} >= {("zeroshot_classification", "stills"), ("zeroshot_retrieval", "stills")}
    on_clips = run_suite(video_model, open_source(str(generated_shards), "video"), section, "video-micro", dataset_name="shapes-video")
    assert ("temporal_order", "shapes-video") in {(result["task"], result["dataset"]) for result in on_clips.results}
