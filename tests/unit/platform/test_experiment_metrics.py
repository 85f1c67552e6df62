"""Gates and the headline name metrics the configured evaluation logs; the experiment's own defaults."""

from __future__ import annotations

import pytest

from vlp.platform.errors import SpecError
from vlp.platform.spec import load_spec, spec_from_dict

MINIMAL = {"name": "exp", "train": {"max_steps": 10}}


def test_a_gate_on_a_metric_the_evaluation_never_logs_is_one_line_listing_the_known_names():
    with pytest.raises(SpecError) as error:
        spec_from_dict({**MINIMAL, "register": {"gates": ["zeroshot/shapes/acc >= 0.8"]}}, source="exp.yaml")
    message = str(error.value)
    assert message.startswith("exp.yaml: register.gates: 'zeroshot/shapes/acc' is not a metric")
    assert "zeroshot/shapes/acc1" in message and "linear_probe/shapes/lp_acc1" in message and "\n" not in message


def test_gates_follow_the_switches_and_the_dataset_of_the_evaluation():
    spec_from_dict({**MINIMAL, "register": {"gates": ["linear_probe/shapes/lp_acc1 >= 0.5", "domain/shapes/acc1/sketch > 0.1"]}})
    with pytest.raises(SpecError, match="register.gates: 'linear_probe/shapes/lp_acc1'"):
        spec_from_dict({**MINIMAL, "eval": {"linear_probe": False}, "register": {"gates": ["linear_probe/shapes/lp_acc1 >= 0.5"]}})
    shards = {**MINIMAL, "data": {"source": "shards", "train": "/data/train", "eval": "s3://bucket/sets/pets/"}}
    spec_from_dict({**shards, "register": {"gates": ["zeroshot/pets/acc1 >= 0.5"]}})
    with pytest.raises(SpecError, match=r"known: none"):
        spec_from_dict({**shards, "data": {**shards["data"], "eval": None}, "register": {"gates": ["zeroshot/pets/acc1 >= 0.5"]}})


def test_headline_defaults_to_the_gates_metrics_and_is_checked_too():
    gated = spec_from_dict({**MINIMAL, "register": {"gates": ["zeroshot/shapes/acc1 >= 0.8", "zeroshot/shapes/acc1 <= 1"]}})
    assert gated.headline_metrics() == ("zeroshot/shapes/acc1",)
    assert spec_from_dict({**MINIMAL, "headline": ["modality_gap/shapes/gap"]}).headline_metrics() == ("modality_gap/shapes/gap",)
    with pytest.raises(SpecError, match="headline: 'zs/acc1' is not a metric"):
        spec_from_dict({**MINIMAL, "headline": ["zs/acc1"]})
    dg = {**MINIMAL, "workload": "dg", "dg": {"domains": ["photo", "sketch"]}}
    assert spec_from_dict({**dg, "headline": ["dg/indigo/avg", "dg/erm/sketch"]}).headline_metrics() == ("dg/indigo/avg", "dg/erm/sketch")
    with pytest.raises(SpecError, match="headline: 'dg/erm/cartoon'"):
        spec_from_dict({**dg, "headline": ["dg/erm/cartoon"]})


def test_defaults_come_from_the_experiment_not_from_a_demo():
    shards = spec_from_dict({**MINIMAL, "data": {"source": "shards", "train": "/data/train"}})
    assert (shards.eval.label_field, shards.eval.domain_field) == ("label", "domain")
    assert shards.registration.model_name == "exp"
    named = spec_from_dict({**MINIMAL, "register": {"model_name": "pets-clip"}, "eval": {"label_field": "colour"}})
    assert (named.registration.model_name, named.eval.label_field, named.eval.domain_field) == ("pets-clip", "colour", "style")
    # The JSON every pipeline step reads back validates to the same spec.
    assert type(named).model_validate_json(named.model_dump_json(by_alias=True)) == named


def test_the_file_s_leading_comment_is_the_description_and_not_part_of_the_hash(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("# Line one of why,\n# line two.\n#\n# A second paragraph.\nname: exp\ntrain:\n  max_steps: 10\n")
    spec = load_spec(path)
    assert spec.description == "Line one of why, line two.\n\nA second paragraph."
    path.write_text("# Reworded.\nname: exp\ntrain:\n  max_steps: 10\n")
    assert load_spec(path).spec_hash() == spec.spec_hash()
    assert "description" not in spec.flat_params()
