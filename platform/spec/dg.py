"""`dg:` — a domain-generalization study: leave-one-domain-out, DomainBed's protocol (`workload: dg`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vlp.platform.spec.base import Section
from vlp.platform.spec.evaluation import DEFAULT_TEMPLATES

DG_METHODS = ("zeroshot", "erm", "indigo")


class IndigoSection(Section):
    """InDiGo: the frozen VL image feature as an extra token in a trainable student, plus a cosine head
    against frozen text embeddings of every (source class, source domain) prompt."""

    cosine_weight: float = Field(0.5, ge=0.0, le=1.0)
    """Weight of the cosine-head loss; the class head gets 1 − this. The class head alone predicts at test time."""
    domain_prompt: str = "a photo of a {classname} in {domain} domain"
    """Prompt for the cosine head's text embeddings; `{classname}` and `{domain}` are filled in."""

    @model_validator(mode="after")
    def _prompt_names_both(self) -> "IndigoSection":
        if "{classname}" not in self.domain_prompt or "{domain}" not in self.domain_prompt:
            raise ValueError("domain_prompt needs both {classname} and {domain}")
        return self


class DgSection(Section):
    """Leave-one-domain-out: each domain is held out once; methods train on the others, are selected by their
    accuracy on held-out images of the training domains, and are scored on the held-out domain."""

    source: Literal["shapes", "shards", "domainbed"] = "shapes"
    """`shapes`: generate one-shape images whose render styles are the domains; `shards`: read webdataset shards at
    `root` (class and domain from each sample's json); `domainbed`: read DomainBed folders at `root`."""
    root: str | None = None
    """The dataset when `source` is `shards` (a folder of *.tar) or `domainbed` (`root/domain/class/*.jpg`); local or s3://."""
    label_field: str = Field("label", min_length=1)
    """`shapes` and `shards`: the json field holding each image's class (default `label`; generated shapes: `shape`,
    and also `colour` and `size`)."""
    domain_field: str = Field("domain", min_length=1)
    """`shapes` and `shards`: the json field holding each image's domain (default `domain`; generated shapes: `style`,
    the render style)."""
    samples: int = Field(4000, ge=16, le=1_000_000)
    """`source: shapes`: images to generate over all domains (styles are drawn uniformly)."""
    domains: tuple[str, ...] = ()
    """Domains that take part, each held out once; default: every domain in the data."""
    methods: tuple[Literal["zeroshot", "erm", "indigo"], ...] = DG_METHODS
    """`zeroshot` (the pretrained VL model and class prompts), `erm` (fine-tune its image encoder with a linear head), `indigo`."""
    pretrained: str | None = None
    """The pretrained VL model: `models:/NAME@ALIAS`, a checkpoint URI, or a model config name; default: pretrain one
    first with the experiment's `model:`, `data:` and `train:` sections."""
    pretrained_checkpoint: str | None = None
    """A local weights file when `pretrained` is an open_clip config name."""
    holdout_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    """Share of each training domain kept out of training for model selection (DomainBed: 0.2)."""
    steps: int = Field(300, ge=1)
    """Optimizer steps per method, held-out domain and trial."""
    batch_size: int = Field(32, ge=1)
    """Images per training domain in each step (DomainBed's convention), split over all processes."""
    lr: float = Field(5e-4, gt=0)
    """AdamW learning rate."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    finetune: bool = True
    """Train the student's image encoder; false trains only the heads (and InDiGo's token projection) on a frozen encoder."""
    eval_every: int = Field(50, ge=1)
    """Evaluate (training-domain validation and held-out domain) every N steps; selection picks the best validation step."""
    trials: int = Field(1, ge=1, le=20)
    """Repeats with different seeds (data split and initialisation); the table shows mean ± standard error."""
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    """Zero-shot prompt templates (`{}` is the class name)."""
    indigo: IndigoSection = IndigoSection()
    """InDiGo settings."""

    @model_validator(mode="before")
    @classmethod
    def _generated_data_s_fields(cls, document):
        """Generated shapes keep their class in `shape` and their domain in `style`; the defaults fit other data."""
        from vlp.platform.spec.experiment import SHAPES_DOMAIN_FIELD, SHAPES_LABEL_FIELD

        if isinstance(document, dict) and document.get("source", "shapes") == "shapes":
            return {"label_field": SHAPES_LABEL_FIELD, "domain_field": SHAPES_DOMAIN_FIELD, **document}
        return document

    @model_validator(mode="after")
    def _sources_need_what_they_read(self) -> "DgSection":
        if self.source != "shapes" and not self.root:
            raise ValueError(f"dg.root is required when dg.source is {self.source!r}")
        if self.source == "domainbed" and {"label_field", "domain_field"} & self.changed_fields():
            raise ValueError("dg.label_field and dg.domain_field apply to shards; DomainBed folders name the domain and class")
        if self.domains and len(self.domains) < 2:
            raise ValueError("dg.domains: leave-one-domain-out needs at least two domains")
        if len(set(self.methods)) != len(self.methods) or not self.methods:
            raise ValueError("dg.methods: name each method once")
        return self
