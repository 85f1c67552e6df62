"""`data:` — where training and evaluation samples come from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from vlp.platform.spec.base import Section

SHAPE_STYLES = ("photo", "cartoon", "sketch", "painting")
Motion = Literal["moving left", "moving right", "moving up", "moving down", "rotating", "growing", "shrinking", "bouncing", "appearing"]
MOTIONS: tuple[str, ...] = Motion.__args__
FrameSampling = Literal["uniform", "segment"]


class VideoShapesOptions(Section):
    """Moving-shapes clips instead of still images: one shape per clip doing one motion, an H.264 MP4 per sample."""

    frames: int = Field(16, ge=2, le=128)
    """Frames per generated clip (the model sees `model.video.frames` of them, picked by `data.video`'s sampling)."""
    fps: int = Field(8, ge=1, le=60)
    """Frame rate written in the files."""
    motions: tuple[Motion, ...] = MOTIONS
    """Motion classes to draw from, uniformly (the classes of motion zero-shot classification)."""
    motion_caption_rate: float = Field(1.0, ge=0.0, le=1.0)
    """Fraction of training captions that name the motion ("a red star moving left"); the rest describe the shape
    alone. Held-out captions always name it."""
    still_fraction: float = Field(0.0, ge=0.0, le=1.0)
    """Fraction of training clips whose shape stays put, captioned as a still image ("a picture of a red star"):
    images for joint image + video training (OmniVL). Their motion is `still`, no motion class."""
    labelled_fraction: float = Field(0.0, ge=0.0, le=1.0)
    """Fraction of training clips captioned by their class prompt alone ("a video of something moving left") and
    labelled with their motion: the labelled clips of OmniVL's unified contrastive loss (the rest are plain pairs)."""
    crf: int = Field(12, ge=0, le=51)
    """x264 constant-rate factor of the clips (lower is closer to the rendered frames; 0 is lossless luma)."""

    @field_validator("motions")
    @classmethod
    def _distinct_motions(cls, motions):
        if not motions or len(set(motions)) != len(motions):
            raise ValueError(f"data.shapes.video.motions: need distinct motions, at least one (got {list(motions)})")
        return motions

    @model_validator(mode="after")
    def _fractions(self) -> "VideoShapesOptions":
        if self.still_fraction + self.labelled_fraction > 1.0:
            raise ValueError(f"data.shapes.video: still_fraction + labelled_fraction must be at most 1 "
                             f"(got {self.still_fraction} + {self.labelled_fraction})")
        return self


class VideoSamplingOptions(Section):
    """Which frames of a clip a video model sees (any video data: generated clips or shards of video files); how many
    is the model's `model.video.frames`."""

    train_sampling: FrameSampling = "segment"
    """Training: `segment` takes one random frame inside each of T equal segments (TSN), `uniform` the middle ones."""
    eval_sampling: FrameSampling = "uniform"
    """Evaluation: `uniform` takes the middle frame of each of T equal segments (the same frames every time)."""


class ShapesSection(Section):
    """The procedural shapes generator (see `vlp data make shapes`)."""

    train_samples: int = Field(20_000, ge=16, le=10_000_000)
    """Number of training image-text pairs to generate."""
    eval_samples: int = Field(1_000, ge=16, le=1_000_000)
    """Number of held-out pairs (generated with a different seed) for evaluation."""
    image_size: int = Field(32, ge=16, le=512)
    """Side of the square images in pixels; with `max_aspect_ratio` above 1, the shorter side."""
    max_aspect_ratio: float = Field(1.0, ge=1.0, le=2.0)
    """Longer side / shorter side drawn uniformly from [1, this] per image, landscape or portrait (1: square)."""
    image_format: Literal["png", "jpg"] = "png"
    """`png` (lossless) or `jpg` (JPEG, as img2dataset writes photos: training and evaluation pay real decode costs)."""
    jpeg_quality: int = Field(90, ge=1, le=95)
    """JPEG quality when `image_format: jpg`."""
    max_objects: int = Field(2, ge=1, le=3)
    """Each image holds between 1 and this many shapes."""
    eval_max_objects: int = Field(1, ge=1, le=3)
    """Each held-out image holds between 1 and this many shapes: 1 keeps the zero-shot label unambiguous; grounding and
    VQA evaluations need scenes of several shapes (set it to `max_objects`)."""
    styles: tuple[Literal["photo", "cartoon", "sketch", "painting"], ...] = SHAPE_STYLES
    """Render styles to draw from; they are the domains of domain-generalization studies."""
    partial_caption_rate: float = Field(0.5, ge=0.0, le=1.0)
    """Fraction of captions that drop colour and/or size words, which forces the model to learn shape."""
    caption_noise_rate: float = Field(0.0, ge=0.0, le=1.0)
    """Fraction of pairs whose caption is replaced by the caption of another random image."""
    shard_size: int = Field(2_000, ge=16)
    """Samples per webdataset shard (video clips: at most 500 a shard)."""
    seed: int = 0
    """Generator seed; the evaluation split uses seed + 1_000_003."""
    video: VideoShapesOptions | None = None
    """Generate moving-shapes clips (video-text pairs) instead of images; `train_samples`/`eval_samples` count clips,
    `image_size` is the frame side (even), `styles` and `partial_caption_rate` apply as to images."""

    @model_validator(mode="after")
    def _video_frames_fit_h264(self) -> "ShapesSection":
        if self.video is not None:
            if self.image_size % 2:
                raise ValueError(f"data.shapes.image_size must be even for video clips (H.264 in yuv420p halves the colour planes); got {self.image_size}")
            if self.max_aspect_ratio != 1.0:
                raise ValueError("data.shapes.max_aspect_ratio: video clips are square; leave it at 1")
        return self


class AugmentSection(Section):
    """Training augmentation, as open_clip's training transform and its `aug_cfg` (the non-timm options)."""

    enabled: bool = True
    """Augment training images; off (or `augment: null`), training sees the evaluation transform (resize, centre crop)."""
    scale: tuple[float, float] = (0.9, 1.0)
    """RandomResizedCrop: range of the crop's area as a fraction of the image (open_clip's `aug_cfg.scale`)."""
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    """RandomResizedCrop: range of the crop's aspect ratio (width / height); open_clip's non-timm transform always uses (3/4, 4/3)."""
    color_jitter: tuple[float, float, float, float] | None = None
    """Colour jitter strengths (brightness, contrast, saturation, hue), applied with `color_jitter_prob` (open_clip's `aug_cfg.color_jitter`)."""
    color_jitter_prob: float = Field(0.8, ge=0.0, le=1.0)
    """Probability of jittering an image's colours when `color_jitter` is set (open_clip's `aug_cfg.color_jitter_prob`)."""
    grayscale_prob: float = Field(0.0, ge=0.0, le=1.0)
    """Probability of turning an image grey (three equal channels; open_clip's `aug_cfg.gray_scale_prob`)."""

    @model_validator(mode="after")
    def _ranges(self) -> "AugmentSection":
        low, high = self.scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"data.augment.scale: need 0 < low <= high <= 1, got {list(self.scale)}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"data.augment.ratio: need 0 < low <= high, got {list(self.ratio)}")
        if self.color_jitter is not None and (min(self.color_jitter) < 0 or self.color_jitter[3] > 0.5):
            raise ValueError("data.augment.color_jitter: strengths must be >= 0 and hue <= 0.5")
        return self

    def open_clip_aug_cfg(self) -> dict:
        """The same augmentation as open_clip's `aug_cfg` (what `--aug-cfg` of open_clip_train takes)."""
        cfg: dict = {"scale": tuple(self.scale)}
        if self.ratio != (3 / 4, 4 / 3):
            cfg["ratio"] = tuple(self.ratio)  # open_clip honours it only with use_timm
        if self.color_jitter is not None and self.color_jitter_prob:
            cfg.update(color_jitter=tuple(self.color_jitter), color_jitter_prob=self.color_jitter_prob)
        if self.grayscale_prob:
            cfg["gray_scale_prob"] = self.grayscale_prob
        return cfg


class DataSection(Section):
    """Training and evaluation data."""

    source: Literal["shapes", "shards"] = "shapes"
    """`shapes`: generate the synthetic dataset into storage (cached by its parameters); `shards`: read existing webdataset shards."""
    shapes: ShapesSection = ShapesSection()
    """Generator settings when `source: shapes`."""
    train: str | None = None
    """Training shards when `source: shards`: a directory or prefix (local or s3://) holding *.tar."""
    eval: str | None = None
    """Evaluation shards when `source: shards`; needs a manifest.json with `classes` for zero-shot."""
    workers: int = Field(0, ge=0, le=64)
    """DataLoader worker processes per training process (0 decodes in the training process)."""
    augment: AugmentSection = AugmentSection()
    """Training augmentation (evaluation never augments); `augment: null` turns it off. Off for `model.arch: transvg` (it trains on the evaluation geometry), which refuses an augment section that turns it on."""
    video: VideoSamplingOptions | None = None
    """Frame sampling for video models (`model.arch: video`); unset, the defaults (training segment, evaluation uniform)."""
    max_bad_samples: int = Field(100, ge=0)
    """Samples that fail to decode (and truncated or corrupt shards) are skipped and counted (`data/skipped_samples`); past this many per data-loading process the run stops with an error naming the shard."""

    @field_validator("augment", mode="before")
    @classmethod
    def _null_is_off(cls, value):
        return {"enabled": False} if value is None else value

    @model_validator(mode="after")
    def _shards_need_paths(self) -> "DataSection":
        if self.source == "shards" and not self.train:
            raise ValueError("data.train is required when data.source is 'shards'")
        return self
