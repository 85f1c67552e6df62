"""`vlp eval MODEL DATA`: the evaluation battery on any model and dataset, results as CLIP_benchmark JSONs."""

from __future__ import annotations

from pathlib import Path

import typer

TASKS = ("zeroshot", "retrieval", "linear_probe", "segmentation", "modality_gap", "per_domain", "vqa", "itm_rerank", "grounding")


def evaluate(
    model: str = typer.Argument(..., help="models:/NAME@ALIAS or models:/NAME/VERSION, a checkpoint (.pt or a run's checkpoints/ folder), or a model config name (vlp preset or open_clip, e.g. ViT-B-32)."),
    data: str = typer.Argument(..., help="Dataset (local or s3://): webdataset shards folder, CLIP_benchmark's webdataset layout, .csv/.tsv table, root/class/*.jpg or root/domain/class/*.jpg."),
    data_format: str = typer.Option("auto", "--format", help="auto, wds, clip_benchmark, csv, folder, domainbed, refcoco or vqa."),
    split: str = typer.Option("test", "--split", help="CLIP_benchmark layout: the split folder to evaluate on; RefCOCO: the refs' split (test = testA + testB, all); VQA: which questions file."),
    dataset_name: str | None = typer.Option(None, "--dataset", help="How results name the dataset, as CLIP_benchmark's --dataset (e.g. wds/vtab/cifar10); default: from DATA."),
    language: str = typer.Option("en", "--language", help="Language of the class names and prompts, recorded in the results."),
    task: list[str] = typer.Option([], "--task", help=f"Run only these tasks (repeatable): {', '.join(TASKS)}. Default: all the data supports."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Local weights file for a model config name."),
    classes: str | None = typer.Option(None, "--classes", help="Class names file (one per line, or JSON/YAML with `classes` and `templates`), or imagenet1k."),
    templates: str | None = typer.Option(None, "--templates", help="Prompt templates file (one per line, {} or {c} for the class), or openai_imagenet / simple_imagenet."),
    probe_train: str | None = typer.Option(None, "--probe-train", help="Training set for the linear probe, e.g. a CLIP_benchmark split folder DATA/train (default: a split of DATA)."),
    label_field: str = typer.Option("label", "--label-field", help="Shards: the json field holding the class (vlp's generated shapes: shape)."),
    domain_field: str = typer.Option("domain", "--domain-field", help="Shards: the json field holding the domain (vlp's generated shapes: style)."),
    image_column: str = typer.Option("filepath", "--image-column", help="Tables: the image path column."),
    caption_column: str = typer.Option("title", "--caption-column", help="Tables: the caption column."),
    label_column: str | None = typer.Option(None, "--label-column", help="Tables: the class column, if any."),
    domain_column: str | None = typer.Option(None, "--domain-column", help="Tables: the domain column, if any."),
    output: str | None = typer.Option(None, "--output", "-o", help="Folder (local or s3://) for result JSONs and plots; default: $VLP_HOME/eval."),
    experiment: str = typer.Option("vlp-eval", "--experiment", help="MLflow experiment that records the evaluation."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not record an MLflow run."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Images per forward pass."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate only the first N images."),
    json_output: bool = typer.Option(False, "--json", help="Print the results as one JSON document."),
) -> None:
    """Evaluate a model: zero-shot classification, retrieval, linear probe, segmentation mIoU, modality gap, per-domain accuracy."""
    from vlp.platform.errors import VlpUserError
    from vlp.platform.spec.evaluation import EvalSection
    from vlp.platform.state import vlp_home

    unknown = sorted(set(task) - set(TASKS))
    if unknown:
        raise VlpUserError(f"--task {unknown[0]!r}: unknown task (known: {', '.join(TASKS)})")
    chosen = set(task or TASKS)
    section = EvalSection(batch_size=batch_size, language=language, **{name: name in chosen for name in TASKS})

    from vlp.cli.output import print_json
    from vlp.workloads.data.readers import ReaderOptions
    from vlp.workloads.evaluation.standalone import EvalRequest, evaluate as run_evaluation

    request = EvalRequest(
        model=model, data=data, output_uri=output or str(vlp_home() / "eval"), section=section, data_format=data_format,
        reader=ReaderOptions(
            label_field=label_field, domain_field=domain_field, image_column=image_column, caption_column=caption_column,
            label_column=label_column, domain_column=domain_column, split=split,
        ),
        checkpoint_file=str(checkpoint) if checkpoint else None, classes_file=classes, templates_file=templates,
        probe_train=probe_train, experiment=None if no_track else experiment, limit=limit, dataset_name=dataset_name,
    )
    report = run_evaluation(request)
    if json_output:
        print_json(report.as_dict())
    else:
        print_report(report)


def print_report(report) -> None:
    from rich.console import Console

    console = Console()
    for result in report.results:
        weights = f" ({result['pretrained']})" if result["pretrained"] else ""
        console.print(f"[bold]{result['task']}[/bold]  {result['model']}{weights} on {result['dataset']}: {result['num_images']} images, {result['num_captions']} captions")
        for key, value in result["metrics"].items():
            console.print(f"  {key:<40} {value:.4f}")
    for task, reason in report.skipped.items():
        console.print(f"[dim]skipped {task}: {reason}[/dim]")
    for uri in [*report.result_uris, *report.plot_uris]:
        console.print(f"wrote {uri}", soft_wrap=True)
    if report.run_id:
        console.print(f"MLflow run {report.run_id} (browse: vlp ui)")
