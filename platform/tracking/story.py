"""What a reviewer reads in the MLflow UI: the run's description and the model version's card, written from the
experiment spec and what the run measured."""

from __future__ import annotations

from vlp.platform.spec import ExperimentSpec

SWITCHES = ("zeroshot", "retrieval", "linear_probe", "segmentation", "modality_gap", "per_domain")


def spec_summary(spec: ExperimentSpec) -> list[str]:
    """One line per part of the experiment: workload, model, data, schedule, resources, evaluation, gates."""
    model = f"{spec.model.arch}" + (f", preset {spec.model.preset}" if spec.model.preset else "")
    if spec.data.source == "shapes":
        shapes = spec.data.shapes
        data = f"generated shapes: {shapes.train_samples:,} training and {shapes.eval_samples:,} held-out pairs at {shapes.image_size} px"
        if shapes.video is not None:
            data = (f"generated moving shapes: {shapes.train_samples:,} training and {shapes.eval_samples:,} held-out clips of "
                    f"{shapes.video.frames} frames at {shapes.image_size} px ({len(shapes.video.motions)} motions)")
    else:
        data = f"shards: train {spec.data.train}" + (f", eval {spec.data.eval}" if spec.data.eval else "")
    train = spec.train
    schedule = f"{train.max_steps} steps" if train.max_steps else f"{train.max_seconds:g} s"
    measured = [switch for switch in SWITCHES if getattr(spec.eval, switch)]
    lines = [
        f"- **workload**: {spec.workload} (team {spec.team}, seed {spec.seed})",
        f"- **model**: {model}",
        f"- **data**: {data}",
        f"- **training**: {schedule}, batch {train.batch_size}, lr {train.lr:g}, {train.precision}",
        f"- **resources**: {spec.resources.nodes} node(s) x {spec.resources.procs_per_node} process(es)",
        f"- **evaluation**: {', '.join(measured) if measured else 'none'}",
    ]
    if spec.registration.gates:
        lines.append(f"- **gates**: {'; '.join(f'`{gate}`' for gate in spec.registration.gates)}")
    return lines


def run_description(spec: ExperimentSpec) -> str:
    """Markdown for the run's `mlflow.note.content`: the experiment's own words, then what it runs."""
    parts = [spec.description] if spec.description else []
    parts.append("\n".join(spec_summary(spec)))
    return "\n\n".join(parts)


def model_card(spec: ExperimentSpec, name: str, version: str, run_id: str, parameters: int | None, metrics: dict[str, float],
               gate_results: list) -> str:
    """Markdown for the model version's description: what it is, what it was trained on, how it scored and
    against which gates, and how to load it."""
    headline = spec.headline_metrics()
    shown = {key: metrics[key] for key in headline if key in metrics} or dict(sorted(metrics.items())[:12])
    lines = [f"# {name} v{version}", ""]
    if spec.description:
        lines += [spec.description, ""]
    lines += [f"Trained by run `{run_id}` of experiment `{spec.name}` (spec hash `{spec.spec_hash()}`).", ""]
    lines += ["## Model", "", f"- **architecture**: {spec.model.arch}" + (f" ({spec.model.preset})" if spec.model.preset else "")]
    if parameters is not None:
        lines.append(f"- **parameters**: {parameters:,}")
    lines += ["", "## Experiment", "", *spec_summary(spec), ""]
    lines += ["## Metrics", "", "| metric | value |", "|---|---|", *(f"| {key} | {value:.4f} |" for key, value in shown.items()), ""]
    if gate_results:
        lines += ["## Gates", "", "| gate | value | result |", "|---|---|---|"]
        lines += [f"| `{r.gate}` | {'-' if r.value is None else f'{r.value:.4f}'} | {'pass' if r.passed else 'FAIL'} |" for r in gate_results]
        lines.append("")
    lines += [
        "## Load it", "",
        "As an MLflow pyfunc (a DataFrame with a `text` column and/or an `image` column of PNG/JPEG bytes; one "
        "L2-normalised `embedding` per row):", "",
        "```python", "import mlflow.pyfunc, pandas as pd",
        f"model = mlflow.pyfunc.load_model(\"models:/{name}/{version}\")",
        "model.predict(pd.DataFrame({\"text\": [\"a photo of a dog\"]}))", "```", "",
        "With open_clip (for architectures open_clip builds):", "",
        "```bash", f"vlp export models:/{name}/{version} ./{name}-v{version}", "```", "",
        "```python", "import open_clip",
        f"model, _, preprocess = open_clip.create_model_and_transforms(\"local-dir:./{name}-v{version}\")",
        f"tokenizer = open_clip.get_tokenizer(\"local-dir:./{name}-v{version}\")", "```",
    ]
    return "\n".join(lines)
