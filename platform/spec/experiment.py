"""The experiment file: one document that says what to run, on what data, and what counts as good."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, model_validator

from vlp.platform.spec.base import Section
from vlp.platform.spec.data import DataSection
from vlp.platform.spec.dg import DgSection
from vlp.platform.spec.evaluation import EvalSection
from vlp.platform.spec.model import ModelSection
from vlp.platform.spec.objective import ObjectiveSection
from vlp.platform.spec.registration import GATE_PATTERN, RegisterSection
from vlp.platform.spec.resources import ResourcesSection
from vlp.platform.spec.sweep import SweepSection
from vlp.platform.spec.train import TrainSection

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
# The json fields of the generated shapes data (vlp.workloads.data.shapes) that hold a sample's class and domain.
SHAPES_LABEL_FIELD = "shape"
SHAPES_DOMAIN_FIELD = "style"


class ExperimentSpec(Section):
    """Root of an experiment file."""

    name: str = Field(pattern=NAME_PATTERN)
    """Experiment name: lowercase letters, digits and dashes (it names the MLflow experiment and cluster objects)."""
    description: str = ""
    """What the experiment is for (the MLflow run's description); default: the experiment file's leading comment."""
    team: str = Field("default", pattern=NAME_PATTERN)
    """Owning team; on the cluster it selects the KFP experiment and the Volcano queue."""
    workload: Literal["pretrain", "dg"] = "pretrain"
    """What the train step runs: `pretrain` (contrastive pretraining), or `dg` (a leave-one-domain-out study, see `dg:`)."""
    seed: int = 0
    """Seed for model initialisation and data order."""
    storage_root: str | None = None
    """Where datasets, checkpoints and results go (local path or s3://bucket/prefix); default: the profile's."""
    data: DataSection = DataSection()
    model: ModelSection = ModelSection()
    objective: ObjectiveSection = ObjectiveSection()
    """Contrastive loss, cross-process gathering and noise harmonization (the `objective:` section)."""
    train: TrainSection
    resources: ResourcesSection = ResourcesSection()
    eval: EvalSection = EvalSection()
    dg: DgSection = DgSection()
    """The domain-generalization study, when `workload: dg` (the `dg:` section)."""
    registration: RegisterSection = Field(RegisterSection(), alias="register")
    """Registration in the MLflow model registry (the `register:` section)."""
    sweep: SweepSection | None = None
    """Run the experiment as trials over some of its fields (the `sweep:` section), one pipeline with `vlp run` or `vlp submit`."""
    headline: tuple[str, ...] = ()
    """Metrics that sum a run up in `vlp run`'s summary, `vlp runs list` and `vlp models list`, such as
    `zeroshot/shapes/acc1`; default: the metrics the gates name."""

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_the_experiment(cls, document):
        """Defaults that depend on other sections: the registered model is named after the experiment, and the
        generated shapes data keeps its class in `shape` and its domain in `style` (other data: `label`, `domain`)."""
        if not isinstance(document, dict):
            return document
        document = dict(document)
        register_key = "registration" if "registration" in document else "register"
        register = document.get(register_key)
        if isinstance(register, dict) and register.get("model_name") is None and isinstance(document.get("name"), str):
            document[register_key] = {**register, "model_name": document["name"]}
        elif register is None and isinstance(document.get("name"), str):
            document[register_key] = {"model_name": document["name"]}
        data = document.get("data")
        source = data.get("source", "shapes") if isinstance(data, dict) else getattr(data, "source", "shapes")
        evaluation = document.get("eval")
        if source == "shapes" and (evaluation is None or isinstance(evaluation, dict)):
            document["eval"] = {"label_field": SHAPES_LABEL_FIELD, "domain_field": SHAPES_DOMAIN_FIELD, **(evaluation or {})}
        return document

    @model_validator(mode="after")
    def _grounding_keeps_the_geometry(self) -> "ExperimentSpec":
        """TransVG trains on the evaluation geometry: augmentation is off unless the file asks for it, then refused."""
        if self.model.arch == "transvg" and "augment" in self.data.model_fields_set and self.data.augment.enabled:
            raise ValueError("data.augment: arch transvg trains on the evaluation geometry (a random crop can cut the referred "
                             "object away, colour jitter changes what an expression means); remove the section or set `augment: null`")
        return self

    def headline_metrics(self) -> tuple[str, ...]:
        """`headline`, or else the metrics the gates name, in order, once each."""
        if self.headline:
            return self.headline
        return tuple(dict.fromkeys(GATE_PATTERN.match(gate)["metric"] for gate in self.registration.gates))

    def canonical_json(self) -> str:
        # The description is prose: rewording it does not make another experiment.
        return json.dumps(self.model_dump(mode="json", by_alias=True, exclude={"description"}), sort_keys=True, separators=(",", ":"))

    def spec_hash(self) -> str:
        """Short content hash: the same file with the same overrides gets the same hash."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]

    def flat_params(self) -> dict[str, str]:
        """`a.b.c -> value` for MLflow params (values as strings, lists joined)."""
        flat: dict[str, str] = {}

        def walk(prefix: str, value: object) -> None:
            if isinstance(value, dict):
                for key, item in value.items():
                    walk(f"{prefix}.{key}" if prefix else key, item)
            elif isinstance(value, (list, tuple)):
                flat[prefix] = json.dumps(value)
            else:
                flat[prefix] = "" if value is None else str(value)

        walk("", self.model_dump(mode="json", by_alias=True, exclude={"description"}))
        return flat
