"""Validate Volcano objects as a Kubernetes API server would: against the openAPIV3Schema of Volcano's published
CRDs (tests/fixtures/volcano, pinned release named in each file's header), with the API server's pruning rule
made an error: a field the schema does not declare would be dropped silently on a cluster, so here it fails.

The structural schema becomes a JSON Schema: every object without `x-kubernetes-preserve-unknown-fields` gets
`additionalProperties: false` (an object with neither properties nor additionalProperties keeps nothing),
`nullable` admits null, and `x-kubernetes-int-or-string` is already spelled as `anyOf` in the CRDs. The root
`metadata` is the API server's ObjectMeta, checked here for what vlp sets: name, namespace, labels, annotations.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml

FIXTURES = Path(__file__).parent / "fixtures" / "volcano"
CRD_FILES = {
    ("batch.volcano.sh/v1alpha1", "Job"): "batch.volcano.sh_jobs.yaml",
    ("scheduling.volcano.sh/v1beta1", "Queue"): "scheduling.volcano.sh_queues.yaml",
    ("scheduling.volcano.sh/v1beta1", "PodGroup"): "scheduling.volcano.sh_podgroups.yaml",
}
DNS_1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
OBJECT_META = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": DNS_1123_SUBDOMAIN},
        "namespace": {"type": "string", "maxLength": 63, "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["name"],
    "additionalProperties": False,
}


def crd_source(api_version: str, kind: str) -> str:
    """The header line naming where the fixture came from."""
    path = FIXTURES / CRD_FILES[(api_version, kind)]
    return " ".join(line.lstrip("# ").strip() for line in path.read_text().splitlines()[1:3])


@functools.cache
def json_schema(api_version: str, kind: str) -> dict:
    group, version = api_version.split("/")
    crd = yaml.safe_load((FIXTURES / CRD_FILES[(api_version, kind)]).read_text())
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
    (served,) = [entry for entry in crd["spec"]["versions"] if entry["name"] == version]
    schema = structural_to_json_schema(served["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = OBJECT_META
    schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "metadata", "spec"})
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": kind}
    # Status is written by Volcano, never by a client.
    schema["properties"].pop("status", None)
    return schema


def structural_to_json_schema(node: dict) -> dict:
    node = copy.deepcopy(node)
    node.pop("description", None)
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"]
    preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
    for key in [key for key in node if key.startswith("x-kubernetes-")]:
        node.pop(key)
    if "properties" in node:
        node["properties"] = {name: structural_to_json_schema(child) for name, child in node["properties"].items()}
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = structural_to_json_schema(node["additionalProperties"])
    if "items" in node:
        node["items"] = structural_to_json_schema(node["items"])
    for combinator in ("anyOf", "allOf", "oneOf"):
        if combinator in node:
            node[combinator] = [structural_to_json_schema(child) for child in node[combinator]]
    if node.get("type") in ("object", ["object", "null"]) and not preserve and "additionalProperties" not in node:
        node["additionalProperties"] = False
    return node


def validation_errors(document: dict) -> list[str]:
    """Every way `document` would be refused or pruned, as `path: message`; empty when the API server keeps it whole."""
    import jsonschema

    key = (document.get("apiVersion"), document.get("kind"))
    if key not in CRD_FILES:
        return [f"no CRD fixture for {key}"]
    validator = jsonschema.Draft7Validator(json_schema(*key))
    return [
        f"{'.'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message[:300]}"
        for error in sorted(validator.iter_errors(document), key=lambda error: list(map(str, error.absolute_path)))
    ]
