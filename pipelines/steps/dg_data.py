"""DG data steps: make sure the domain-labelled dataset exists (generate shapes with one shape per image, cached by
its parameters, or take the shards or DomainBed folder at `dg.root`), then name the domains the study holds out one by one.

They are two steps because the held-out domains fan out with `ParallelFor`, which kfp.local can only feed from a
step's single output."""

from __future__ import annotations

from vlp.pipelines.steps.context import decode, storage_root
from vlp.platform.errors import SpecError
from vlp.platform.tracking.runs import client

# The DG images come from their own seed, apart from pretraining's and evaluation's.
DG_SEED_OFFSET = 2_000_003


def run(spec_json: str, runtime_json: str, run_id: str) -> str:
    """Returns the dataset URI."""
    spec, runtime = decode(spec_json, runtime_json)
    dataset_uri = ensure_dataset(spec, runtime)
    client(runtime.tracking_uri).set_tag(run_id, "vlp.dg.dataset", dataset_uri)
    return dataset_uri


def ensure_dataset(spec, runtime) -> str:
    """The study's dataset URI, generating the shapes images unless a complete copy exists (so it is cheap to repeat)."""
    dg = spec.dg
    if dg.source != "shapes":
        return dg.root
    from vlp.pipelines.steps.prepare_data import ensure_shapes
    from vlp.workloads.data.shapes import ShapesParams

    shapes = spec.data.shapes
    params = ShapesParams(
        samples=dg.samples, seed=shapes.seed + DG_SEED_OFFSET, image_size=shapes.image_size, max_aspect_ratio=shapes.max_aspect_ratio,
        image_format=shapes.image_format, jpeg_quality=shapes.jpeg_quality, min_objects=1, max_objects=1,
        styles=tuple(shapes.styles), partial_caption_rate=0.0, caption_noise_rate=0.0, shard_size=shapes.shard_size,
    )
    dataset_uri, _ = ensure_shapes(storage_root(spec, runtime), params)
    return dataset_uri


def held_out_domains(spec_json: str, runtime_json: str, run_id: str, dataset_uri: str) -> list[str]:
    """`dg.domains`, or every domain of the data; each is checked to exist."""
    spec, runtime = decode(spec_json, runtime_json)
    if spec.dg.source == "shapes" and spec.dg.domain_field == "style":
        found = tuple(spec.data.shapes.styles)
    else:
        from vlp.workloads.dg.data import domains_of, open_dg_source

        found = domains_of(open_dg_source(spec.dg, dataset_uri))
    missing = sorted(set(spec.dg.domains) - set(found))
    if missing:
        raise SpecError(f"dg.domains: {', '.join(missing)} not in the data (domains there: {', '.join(found)})")
    domains = list(spec.dg.domains or found)
    if len(domains) < 2:
        raise SpecError(f"dg: leave-one-domain-out needs at least two domains (the data has {', '.join(domains) or 'none'})")
    client(runtime.tracking_uri).set_tag(run_id, "vlp.dg.domains", ",".join(domains))
    return domains
