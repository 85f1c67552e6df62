from __future__ import annotations

import pytest

from vlp.platform.errors import SpecError
from vlp.platform.spec import load_spec, spec_from_dict

MINIMAL = {"name": "exp", "train": {"max_steps": 10}}


def test_minimal_file_gets_documented_defaults():
    spec = spec_from_dict(MINIMAL)
    assert spec.model.preset == "shapes-rn-tiny"
    assert spec.resources.world_size == 1
    assert spec.registration.model_name == "exp"  # named after the experiment
    assert (spec.eval.label_field, spec.eval.domain_field) == ("shape", "style")  # the generated shapes' fields
    assert all(field.description for field in type(spec.train).model_fields.values())


def test_label_and_domain_fields_are_the_data_s_not_the_demo_s():
    """`label`/`domain` unless the data is the generated shapes (then `shape`/`style`), for eval and for a DG study."""
    shards = spec_from_dict({**MINIMAL, "data": {"source": "shards", "train": "/data/train", "eval": "/data/eval"}})
    assert (shards.eval.label_field, shards.eval.domain_field) == ("label", "domain")
    dg_shards = spec_from_dict({**MINIMAL, "workload": "dg", "dg": {"source": "shards", "root": "/data/camera-traps"}})
    assert (dg_shards.dg.label_field, dg_shards.dg.domain_field) == ("label", "domain")
    dg_shapes = spec_from_dict({**MINIMAL, "workload": "dg"})
    assert (dg_shapes.dg.label_field, dg_shapes.dg.domain_field) == ("shape", "style")
    assert spec_from_dict({**MINIMAL, "workload": "dg", "dg": {"label_field": "colour"}}).dg.label_field == "colour"


def test_vlp_eval_s_label_field_is_the_platform_s_default():
    import inspect

    from vlp.cli.eval_command import evaluate

    defaults = {name: parameter.default.default for name, parameter in inspect.signature(evaluate).parameters.items()}
    assert (defaults["label_field"], defaults["domain_field"]) == ("label", "domain")


def test_overrides_set_nested_fields_with_yaml_values():
    spec = spec_from_dict(MINIMAL, ["train.lr=0.01", "resources.nodes=2", "register.gates=['zeroshot/shapes/acc1 >= 0.5']", "data.shapes.styles=[sketch]"])
    assert spec.train.lr == 0.01
    assert spec.resources.nodes == 2
    assert spec.registration.gates == ("zeroshot/shapes/acc1 >= 0.5",)
    assert spec.data.shapes.styles == ("sketch",)


@pytest.mark.parametrize(
    "document, overrides, expected",
    [
        ({**MINIMAL, "trian": {}}, [], "trian: unknown key"),
        ({**MINIMAL, "train": {"max_steps": "many"}}, [], "train.max_steps: Input should be a valid integer"),
        ({"name": "exp"}, [], "train: required field is missing"),
        ({**MINIMAL, "name": "Bad Name"}, [], "name: String should match pattern"),
        ({**MINIMAL, "data": {"source": "shards"}}, [], "data: data.train is required"),
        ({**MINIMAL, "register": {"gates": ["acc1 is high"]}}, [], "is not of the form"),
        (MINIMAL, ["train.lr"], "expected KEY=VALUE"),
        (MINIMAL, ["name.sub=1"], "name is not a section"),
        ({"name": "exp", "train": {"max_seconds": 10}}, [], "schedule_steps is required"),
    ],
)
def test_bad_specs_name_the_field(document, overrides, expected):
    with pytest.raises(SpecError) as error:
        spec_from_dict(document, overrides)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_spec_hash_is_stable_and_sensitive():
    assert spec_from_dict(MINIMAL).spec_hash() == spec_from_dict(dict(MINIMAL)).spec_hash()
    assert spec_from_dict(MINIMAL).spec_hash() != spec_from_dict(MINIMAL, ["train.lr=0.5"]).spec_hash()


def test_flat_params_are_strings_with_dotted_keys():
    params = spec_from_dict(MINIMAL).flat_params()
    assert params["train.max_steps"] == "10"
    assert params["register.model_name"] == "exp"
    assert all(isinstance(value, str) for value in params.values())


def test_load_spec_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(SpecError, match="no such experiment file"):
        load_spec(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(scalar)


def test_repository_experiments_validate():
    from pathlib import Path

    import json

    for path in sorted((Path(__file__).resolve().parents[3] / "experiments").glob("*.yaml")):
        spec = load_spec(path)
        # Every pipeline step re-validates the spec from JSON: it must survive the round trip unchanged.
        again = spec_from_dict(json.loads(json.dumps(spec.model_dump(mode="json", by_alias=True))))
        assert again.spec_hash() == spec.spec_hash(), path.name


def test_evaluation_measures_nothing_only_when_every_measurement_is_off():
    from vlp.platform.spec.evaluation import EvalSection

    measurements = ("zeroshot", "retrieval", "linear_probe", "segmentation", "modality_gap", "per_domain", "vqa", "itm_rerank", "grounding")
    everything_off = {name: False for name in measurements}
    assert not EvalSection(**everything_off, plots=True).measures_anything
    for name in measurements:
        assert EvalSection(**{**everything_off, name: True}).measures_anything
