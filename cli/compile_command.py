"""`vlp compile FILE -o pipeline.yaml`: write the KFP IR of an experiment's pipeline."""

from __future__ import annotations

from pathlib import Path

import typer


def compile_pipeline(
    experiment: Path = typer.Argument(..., help="Experiment file (YAML)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the pipeline YAML."),
    set_: list[str] = typer.Option([], "--set", help="Override a field: --set train.lr=0.001 (repeatable)."),
) -> None:
    """Compile the experiment's pipeline to KFP IR YAML (the spec is baked in as the default argument)."""
    from vlp.pipelines.compile import compile_to_file
    from vlp.platform.profiles import local_runtime
    from vlp.platform.spec import load_spec

    spec = load_spec(experiment, set_)
    compile_to_file(spec, local_runtime(), output)
    typer.echo(f"wrote {output}")
