"""`vlp data …`: make datasets."""

from __future__ import annotations

import typer

app = typer.Typer(help="Make and inspect datasets.", no_args_is_help=True)
make_app = typer.Typer(help="Generate a dataset.", no_args_is_help=True)
app.add_typer(make_app, name="make")


@make_app.command("shapes")
def make_shapes(
    out: str = typer.Option(..., "--out", help="Target directory or s3://bucket/prefix."),
    samples: int = typer.Option(10_000, "--samples", min=1, help="Number of image-text pairs."),
    seed: int = typer.Option(0, "--seed", help="Generator seed (same seed, same bytes)."),
    image_size: int = typer.Option(32, "--image-size", min=16, max=512, help="Image side in pixels (the shorter side with --max-aspect-ratio)."),
    max_aspect_ratio: float = typer.Option(1.0, "--max-aspect-ratio", min=1.0, max=2.0, help="Longer/shorter side drawn per image from [1, this]; 1 keeps images square."),
    image_format: str = typer.Option("png", "--format", help="png, or jpg (JPEG, as img2dataset writes photos)."),
    jpeg_quality: int = typer.Option(90, "--jpeg-quality", min=1, max=95, help="JPEG quality with --format jpg."),
    max_objects: int = typer.Option(2, "--max-objects", min=1, max=3, help="Up to this many shapes per image."),
    noise: float = typer.Option(0.0, "--caption-noise", min=0.0, max=1.0, help="Fraction of captions swapped with another image's."),
    partial: float = typer.Option(0.5, "--partial-captions", min=0.0, max=1.0, help="Fraction of captions without colour/size words."),
    shard_size: int = typer.Option(2000, "--shard-size", min=16, help="Samples per shard."),
    json_output: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Generate the synthetic shapes dataset as webdataset shards plus manifest.json."""
    from rich.progress import Progress

    from vlp.cli.output import print_json
    from vlp.platform.storage import join
    from vlp.workloads.data.shapes import ShapesParams, generate_shapes

    join(out)  # validates the URI before any work
    params = ShapesParams(
        samples=samples, seed=seed, image_size=image_size, max_aspect_ratio=max_aspect_ratio, image_format=image_format,
        jpeg_quality=jpeg_quality, max_objects=max_objects,
        caption_noise_rate=noise, partial_caption_rate=partial, shard_size=shard_size,
    )
    with Progress(transient=True, disable=json_output) as progress:
        task = progress.add_task("rendering shapes", total=samples)
        manifest = generate_shapes(params, out, on_progress=lambda done: progress.update(task, completed=done))
    if json_output:
        print_json(manifest)
    else:
        typer.echo(f"wrote {manifest['samples']} samples in {len(manifest['shards'])} shards to {out} "
                   f"({manifest['samples_per_second']:.0f} samples/s)")
