"""Evaluate step: run the evaluation battery on the held-out data, store the results JSON, log metrics and plots."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from vlp.pipelines.steps.context import decode, storage_root
from vlp.platform.layout import RunLayout
from vlp.platform.tracking.runs import client


def run(spec_json: str, runtime_json: str, run_id: str, checkpoint_uri: str, eval_uri: str) -> str:
    """Returns the flat metrics as JSON (`zeroshot/shapes/acc1` -> value)."""
    spec, runtime = decode(spec_json, runtime_json)
    if not eval_uri or not spec.eval.measures_anything:
        return json.dumps({})
    from vlp.platform.spec.metrics import eval_dataset_slug
    from vlp.workloads.data.readers import ReaderOptions, open_source
    from vlp.workloads.evaluation.encode import load_trained_model
    from vlp.workloads.evaluation.publish import log_to_mlflow, write_results
    from vlp.workloads.evaluation.suite import run_suite

    built = load_trained_model(checkpoint_uri)
    source = open_source(eval_uri, "auto", ReaderOptions(label_field=spec.eval.label_field, domain_field=spec.eval.domain_field))
    dataset = eval_dataset_slug(spec) if spec.data.source == "shapes" else source.name
    with tempfile.TemporaryDirectory() as scratch:
        output = run_suite(built, source, spec.eval, spec.registration.model_name, plot_dir=Path(scratch), dataset_name=dataset, pretrained=checkpoint_uri)
        write_results(output.results, RunLayout(storage_root(spec, runtime), run_id).results)
        flat = log_to_mlflow(client(runtime.tracking_uri), run_id, output.results, output.plots, step=checkpoint_step(checkpoint_uri))
    if spec.model.arch == "coca" and spec.model.coca.eval_captions:
        log_generated_captions(built, source, spec.model.coca, client(runtime.tracking_uri), run_id)
    return json.dumps(flat)


def checkpoint_step(checkpoint_uri: str) -> int:
    """The training step a checkpoint was saved at (its name says it), so the metrics line up with training's."""
    from vlp.workloads.train.checkpoint import CHECKPOINT_NAME

    match = CHECKPOINT_NAME.search(checkpoint_uri)
    return int(match.group(1)) if match else 0


def log_generated_captions(built, source, coca, mlflow_client, run_id: str) -> None:
    """CoCa: greedy captions for the first held-out images beside their true captions (`captions/generated.txt`)."""
    import itertools

    import torch

    from vlp.workloads.evaluation.encode import image_transform

    records = list(itertools.islice(source.read(), coca.eval_captions))
    pixels = torch.stack([image_transform(built)(record.image) for record in records])
    generated = built.model.generate_captions(pixels, built.tokenizer, coca.max_caption_tokens)
    lines = [f"{record.key}\ttrue: {record.caption}\tgenerated: {caption}" for record, caption in zip(records, generated)]
    mlflow_client.log_text(run_id, "\n".join(lines) + "\n", "captions/generated.txt")
