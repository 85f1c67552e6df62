"""`eval:` — what to measure after training (and what `vlp eval` measures by default)."""

from __future__ import annotations

from pydantic import Field, field_validator

from vlp.platform.spec.base import Section

DEFAULT_TEMPLATES = (
    "a {}.",
    "a picture of a {}.",
    "a photo of a {}.",
    "an image with a {}.",
    "a drawing of a {}.",
)
DEFAULT_PROBE_WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
# Named lists of `eval.classnames` and `eval.templates`: attributes of `open_clip.zero_shot_metadata` (the lists
# CLIP_benchmark also uses for ImageNet), looked up where they are used because open_clip is slow to import.
NAMED_CLASSNAMES = {"imagenet1k": "IMAGENET_CLASSNAMES"}
NAMED_TEMPLATES = {"openai_imagenet": "OPENAI_IMAGENET_TEMPLATES", "simple_imagenet": "SIMPLE_IMAGENET_TEMPLATES"}


class EvalSection(Section):
    """Evaluation on the held-out split. Tasks a dataset cannot support (no captions, no masks) are skipped."""

    zeroshot: bool = True
    """Zero-shot classification of each image's class with a template ensemble (acc1, acc5, mean per-class recall)."""
    retrieval: bool = True
    """Image↔text retrieval recall@1/5/10 on the held-out captions."""
    linear_probe: bool = True
    """Logistic regression on frozen image features, weight decay searched on a validation split."""
    segmentation: bool = True
    """Zero-shot segmentation mIoU against the dataset's masks, for models with patch–text similarity maps (PACL)."""
    modality_gap: bool = True
    """Distance between the centroids of the normalised image and text embeddings."""
    per_domain: bool = True
    """Zero-shot accuracy per domain (the shapes render style), when the data names domains."""
    vqa: bool = True
    """VQA accuracy (overall and per question kind) when the images carry questions: a linear probe classifies the
    answer from the fused [CLS] of (image, question) of a fusion model, or from the concatenated image and question
    embeddings of a dual encoder (the baseline); images split into train / validation / test by `probe_split`."""
    itm_rerank: bool = True
    """For models with an image-text matching head (fusion, flava): retrieval whose top `rerank_top_k` candidates
    per query are re-ranked by the ITM logit; recall@1 and @5 before and after."""
    rerank_top_k: int = Field(16, ge=1, le=1000)
    """Candidates per query that ITM re-scores (more is slower: queries × k fused forward passes)."""
    grounding: bool = True
    """Visual grounding Acc@0.5 IoU and mean IoU when the images carry referring expressions with boxes: the
    model's boxes (transvg), or the patch-region baseline of a dual encoder with a ViT image tower."""
    plots: bool = True
    """Draw confusion matrix, recall@k, per-domain bars, patch heatmaps and a 2-D embedding projection."""
    templates: str | tuple[str, ...] = DEFAULT_TEMPLATES
    """Prompt templates (`{}` or `{c}` is replaced by the class name; the embeddings are averaged), or a named set:
    `openai_imagenet` (OpenAI's 80 ImageNet templates) or `simple_imagenet` (their 7). A dataset that ships its own
    templates (CLIP_benchmark's layout) uses those unless this is set."""
    classnames: str | tuple[str, ...] | None = None
    """Class names in label order instead of the dataset's, or `imagenet1k` (OpenAI's ImageNet-1k names, for an
    ImageNet copy in class folders or shards). None: the names the dataset gives."""
    language: str = "en"
    """Language of the class names and prompts; recorded in every result as CLIP_benchmark does."""
    batch_size: int = Field(500, ge=1)
    """Evaluation batch size."""
    probe_weight_decays: tuple[float, ...] = DEFAULT_PROBE_WEIGHT_DECAYS
    """L2 penalties the linear probe tries on the validation split."""
    probe_split: tuple[float, float] = (0.6, 0.2)
    """Train and validation fractions of the evaluation set for the linear probe (the test split gets the rest)."""
    background_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """Segmentation: a pixel is background where its best class score, min-max normalised per image, is below this."""
    label_field: str = "label"
    """The field of each sample's json that holds its class (generated shapes: `shape`, also `colour` or `size`)."""
    domain_field: str = "domain"
    """The field of each sample's json that holds its domain (generated shapes: `style`)."""

    @property
    def measures_anything(self) -> bool:
        """False when every measurement is switched off (plots alone draw nothing)."""
        return any((self.zeroshot, self.retrieval, self.linear_probe, self.segmentation, self.modality_gap, self.per_domain, self.vqa, self.itm_rerank, self.grounding))

    @field_validator("probe_split")
    @classmethod
    def _split_leaves_a_test_set(cls, split: tuple[float, float]) -> tuple[float, float]:
        if min(split) <= 0 or sum(split) >= 1:
            raise ValueError("probe_split: train and validation fractions must be positive and sum to less than 1")
        return split

    @field_validator("templates")
    @classmethod
    def _templates_name_the_class(cls, templates: str | tuple[str, ...]) -> str | tuple[str, ...]:
        if isinstance(templates, str):
            if templates not in NAMED_TEMPLATES:
                raise ValueError(f"unknown template set {templates!r} (known: {', '.join(NAMED_TEMPLATES)}); or give a list of templates")
            return templates
        if not templates or any("{}" not in template and "{c}" not in template for template in templates):
            raise ValueError("every template needs a {} (or {c}) for the class name")
        return templates

    @field_validator("classnames")
    @classmethod
    def _known_class_list(cls, classnames: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        if isinstance(classnames, str) and classnames not in NAMED_CLASSNAMES:
            raise ValueError(f"unknown class list {classnames!r} (known: {', '.join(NAMED_CLASSNAMES)}); or give a list of names")
        if isinstance(classnames, tuple) and not classnames:
            raise ValueError("an empty class list; leave it out to use the dataset's classes")
        return classnames
