"""Register step: log the model as an MLflow pyfunc (with its open_clip files), register a version with its evidence,
alias it `candidate`."""

from __future__ import annotations

import json

from vlp.pipelines.steps.context import decode
from vlp.platform.registry.versions import tag_version

CANDIDATE_ALIAS = "candidate"


def run(spec_json: str, runtime_json: str, run_id: str, checkpoint_uri: str, metrics_json: str) -> str:
    """Returns `NAME:VERSION`, or an empty string when registration is disabled."""
    spec, runtime = decode(spec_json, runtime_json)
    if not spec.registration.enabled:
        return ""
    import mlflow

    from vlp.platform.tracking.permissions import access_for, refuse_foreign_model, share_registered_model
    from vlp.workloads.serving.pyfunc_model import log_embedder
    from vlp.workloads.train.checkpoint import load_checkpoint

    access = access_for(runtime.tracking_uri)
    if access is not None:
        refuse_foreign_model(access, spec.registration.model_name, spec.team)
    state = load_checkpoint(checkpoint_uri)
    mlflow.set_tracking_uri(runtime.tracking_uri)
    with mlflow.start_run(run_id=run_id):
        info = log_embedder(state, spec.registration.model_name)
    version = str(info.registered_model_version)
    if access is not None:
        share_registered_model(access, spec.registration.model_name, spec.team)
    metrics = json.loads(metrics_json)
    tag_version(
        spec.registration.model_name, version, metrics, list(spec.registration.gates),
        spec.spec_hash(), runtime.git_commit, CANDIDATE_ALIAS, runtime.tracking_uri,
    )
    describe_version(spec, version, run_id, state, metrics, runtime.tracking_uri)
    return f"{spec.registration.model_name}:{version}"


def describe_version(spec, version: str, run_id: str, state: dict, metrics: dict[str, float], tracking_uri: str) -> None:
    """The version's description is its model card; its headline tag lets `vlp models list` show what matters."""
    from vlp.platform.registry.gates import check_gates
    from vlp.platform.tracking.headline import headline_tag
    from vlp.platform.tracking.runs import client
    from vlp.platform.tracking.story import model_card

    name = spec.registration.model_name
    parameters = sum(tensor.numel() for tensor in state["model"].values() if hasattr(tensor, "numel"))
    card = model_card(spec, name, version, run_id, parameters, metrics, check_gates(list(spec.registration.gates), metrics))
    mlflow_client = client(tracking_uri)
    mlflow_client.update_model_version(name, version, description=card)
    for key, value in headline_tag(spec.headline_metrics()).items():
        mlflow_client.set_model_version_tag(name, version, key, value)
