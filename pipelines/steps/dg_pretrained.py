"""DG pretrained-model step: the VL model the study starts from — the one `dg.pretrained` names (loaded once here, so
a wrong reference fails before any job starts), or one pretrained now with the experiment's `data:`, `model:` and
`train:` sections and evaluated like any pretraining run."""

from __future__ import annotations

from vlp.pipelines.steps.context import decode, storage_root
from vlp.platform.errors import VlpUserError
from vlp.platform.layout import RunLayout


def run(spec_json: str, runtime_json: str, run_id: str) -> str:
    """Returns the model reference every held-out domain's job loads."""
    spec, runtime = decode(spec_json, runtime_json)
    if spec.dg.pretrained:
        from vlp.workloads.evaluation.model_source import load_model

        load_model(spec.dg.pretrained, spec.dg.pretrained_checkpoint, runtime.tracking_uri)
        return spec.dg.pretrained
    from vlp.pipelines.steps import evaluate, prepare_data, pretrain

    data = prepare_data.run(spec_json, runtime_json, run_id)
    checkpoint = pretrain.run(spec_json, runtime_json, run_id, data.train_uri)
    evaluate.run(spec_json, runtime_json, run_id, checkpoint, data.eval_uri)
    return checkpoint


def reference(spec, runtime, run_id: str) -> str:
    """What the held-out domains' jobs load: `dg.pretrained`, or the checkpoint this run's pretraining wrote."""
    if spec.dg.pretrained:
        return spec.dg.pretrained
    from vlp.workloads.train.checkpoint import Checkpointer

    latest = Checkpointer(RunLayout(storage_root(spec, runtime), run_id).checkpoints).latest_uri()
    if latest is None:
        raise VlpUserError(f"run {run_id} has no pretrained checkpoint (did the dg-pretrained step run?)")
    return latest
