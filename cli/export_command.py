"""`vlp export MODEL DIR`: a trained model in open_clip's own layout, for `open_clip.create_model_and_transforms("local-dir:DIR")`."""

from __future__ import annotations

import typer


def export(
    model: str = typer.Argument(..., metavar="MODEL", help="models:/NAME@ALIAS or models:/NAME/VERSION, a run id, or a checkpoint (.pt, a run's checkpoints/ folder or the run folder; local or s3://)."),
    directory: str = typer.Argument(..., metavar="DIR", help="Folder (local or s3://) to write open_clip_config.json and open_clip_model.safetensors into."),
    storage_root: str | None = typer.Option(None, "--storage-root", help="For a run id: the storage root the run wrote to, when its experiment file did not name one (default: the local one)."),
) -> None:
    """Export a model for open_clip: its config (model_cfg + preprocess_cfg) and weights as a plain state dict."""
    from vlp.workloads.models.open_clip_export import export_open_clip

    for uri in export_open_clip(model, directory, storage_root=storage_root):
        typer.echo(f"wrote {uri}")
    typer.echo(f'load with: open_clip.create_model_and_transforms("local-dir:{directory}")')
