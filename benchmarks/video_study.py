"""The video study of docs/results-video.md in one command: every video experiment at every seed, trained and
evaluated, then the claims' metrics as mean ± sample standard deviation over the seeds.

    python -m vlp.benchmarks.video_study [--experiments experiments/video-*.yaml] [--seeds 0 1 2]
        [--home DIR] [--limit-steps N] [--table-only]

Each (experiment, seed) runs what `vlp run EXPERIMENT --set seed=S` runs, minus the orchestration: prepare-data's
generator (`ensure_shapes`, cached by its parameters, so experiments that share data share it), vlp's trainer
(`PretrainTrainer`, one process, no tracking), then the evaluation battery (`run_suite`: the video battery on the
held-out clips) on the last checkpoint; models whose image tower reads stills are also scored on held-out shapes
images (zero-shot shape, `image:` names), for the claim that joint image + video training helps both. On a
2-core machine shared with other jobs, the pipeline's start-up and MLflow logging would cost more than the
training itself. Every finished pair is written to HOME/video-study.json at once; pairs already there are not
run again, so an interrupted study continues where it stopped.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import statistics
import time
from pathlib import Path

# (column, metric name; {S}: the video dataset slug, {I}: the image one).
COLUMNS = (
    ("motion acc1", "zeroshot/{S}-motion/acc1"),
    ("left vs right", "zeroshot/{S}-motion/pair_acc1/moving_left_vs_moving_right"),
    ("order pairs", "zeroshot/{S}-motion/order_pair_acc1"),
    ("shape acc1", "zeroshot/{S}-shape/acc1"),
    ("colour acc1", "zeroshot/{S}-colour/acc1"),
    ("T→V R@1", "retrieval/{S}/video_retrieval_recall_at_1"),
    ("V→T R@1", "retrieval/{S}/text_retrieval_recall_at_1"),
    ("motion probe", "linear_probe/{S}-motion/lp_acc1"),
    ("1 − reversed cos", "temporal_order/{S}/reversed_cosine"),
    ("image shape acc1", "zeroshot/{I}/acc1"),
)
VIDEO_SLUG, IMAGE_SLUG = "shapes-video", "shapes-images"
MOTION_ACC = re.compile(r"^zeroshot/(?P<slug>.+)-motion/acc1$")


def run_one(experiment: str, seed: int, home: Path, overrides: list[str], checkpoints: dict[str, str], eval_limit: int | None) -> dict:
    """Train one experiment at one seed and evaluate it; returns its row (metrics by their MLflow names).
    `checkpoints` maps a registered model name to this seed's checkpoint of the experiment that registers it (an
    experiment that starts `init_from: models:/NAME@…` starts from it instead, as `vlp run` would after that run)."""
    from vlp.platform.layout import RunLayout
    from vlp.platform.spec.loading import load_spec, read_yaml_mapping
    from vlp.platform.tracking.protocol import NullTracker
    from vlp.workloads.data.shards import list_shards
    from vlp.workloads.evaluation.encode import load_trained_model
    from vlp.workloads.evaluation.model_source import checkpoint_uri_of
    from vlp.workloads.train.trainer import PretrainTrainer, TrainInputs

    document = read_yaml_mapping(experiment)
    arch = document.get("model", {}).get("arch", "clip")
    chosen = [f"seed={seed}"] + [item for item in overrides if arch == "video" or not item.startswith("model.video.")]
    init_from = str(document.get("model", {}).get("init_from") or "")
    if init_from.startswith("models:/"):
        name = init_from.removeprefix("models:/").split("@")[0].split("/")[0]
        if name not in checkpoints:
            raise SystemExit(f"{experiment}: starts from {init_from}; run the experiment that registers {name} first (same seed)")
        chosen.append(f"model.init_from={checkpoints[name]}")
    spec = load_spec(experiment, chosen)
    root = str(home / "storage")
    train_uri = prepared(root, spec)[0]
    layout = RunLayout(root, f"{Path(experiment).stem}-seed{seed}-{int(time.time())}")
    started = time.perf_counter()
    PretrainTrainer(spec, TrainInputs(layout, list_shards(train_uri), NullTracker, train_uri=train_uri)).train()
    train_seconds = time.perf_counter() - started
    checkpoint = checkpoint_uri_of(layout.checkpoints)
    metrics = evaluate(load_trained_model(checkpoint), Path(experiment).stem, spec, root, eval_limit)
    return {
        "experiment": experiment, "seed": seed, "status": "FINISHED", "overrides": chosen, "steps": spec.train.max_steps,
        "train_seconds": round(train_seconds, 1), "total_seconds": round(time.perf_counter() - started, 1),
        "checkpoint": checkpoint, "registers": spec.registration.model_name, "metrics": metrics,
    }


def prepared(root: str, spec) -> tuple[str, str, str]:
    """Training data of the experiment, and the held-out clips and stills every run is scored on (prepare-data's
    generator and cache: the video experiments share their data)."""
    from vlp.pipelines.steps.prepare_data import _image_params, _video_params, ensure_shapes

    shapes = spec.data.shapes
    video_train, video_eval = _video_params(shapes if shapes.video is not None else SHARED_DATA.data.shapes)
    image_train, image_eval = _image_params(shapes)
    train_uri = ensure_shapes(root, video_train if shapes.video is not None else image_train)[0]
    return train_uri, ensure_shapes(root, video_eval)[0], ensure_shapes(root, image_eval)[0]


def evaluate(built, name: str, spec, root: str, limit: int | None) -> dict[str, float]:
    """The battery on the held-out clips; zero-shot shape on held-out stills for models that read images."""
    from vlp.workloads.data.readers import ReaderOptions, open_source
    from vlp.workloads.evaluation.publish import flat_metrics
    from vlp.workloads.evaluation.suite import run_suite

    _, clips_uri, stills_uri = prepared(root, spec)
    section = spec.eval.model_copy(update={"plots": False})
    metrics = flat_metrics(run_suite(built, open_source(clips_uri, "video"), section, name, dataset_name=VIDEO_SLUG, limit=limit).results)
    still = section.model_copy(update={"retrieval": False, "linear_probe": False, "modality_gap": False, "per_domain": False, "segmentation": False})
    try:
        images = open_source(stills_uri, "wds", ReaderOptions(label_field="shape"))
        metrics |= flat_metrics(run_suite(built, images, still, name, dataset_name=IMAGE_SLUG, limit=limit).results)
    except Exception as err:  # noqa: BLE001 — the row keeps its video metrics; the table shows the gap
        print(f"{name}: no evaluation on still images ({err})", flush=True)
    return metrics


def table(runs: list[dict]) -> str:
    """Markdown: one row per experiment, mean ± sample std over its finished seeds (which, in the last column)."""
    finished = [run for run in runs if run.get("status") == "FINISHED"]
    slug = next((match["slug"] for run in finished for name in run["metrics"] if (match := MOTION_ACC.match(name))), VIDEO_SLUG)
    columns = [(label, name.replace("{S}", slug).replace("{I}", IMAGE_SLUG)) for label, name in COLUMNS]
    columns = [(label, name) for label, name in columns if any(name in run["metrics"] for run in finished)]
    lines = ["| experiment | " + " | ".join(label for label, _ in columns) + " | seeds |", "|---|" + "---:|" * len(columns) + "---|"]
    for experiment in dict.fromkeys(run["experiment"] for run in finished):
        rows = [run for run in finished if run["experiment"] == experiment]
        cells = [(order_cell if name.startswith("temporal_order/") else cell)([run["metrics"].get(name) for run in rows]) for _, name in columns]
        lines.append(f"| {Path(experiment).stem} | " + " | ".join(cells) + f" | {','.join(str(run['seed']) for run in rows)} |")
    return "\n".join(lines)


def cell(values: list[float | None]) -> str:
    values = [value for value in values if value is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def order_cell(cosines: list[float | None]) -> str:
    """How far a clip's embedding moves when its frames are reversed (0: blind to order), in scientific notation."""
    gaps = [1 - value for value in cosines if value is not None]
    return f"{statistics.mean(gaps):.1e}" if gaps else "–"


def main(argv: list[str] | None = None) -> None:
    global SHARED_DATA
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", nargs="+", default=sorted(glob.glob("experiments/video-*.yaml")))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--home", type=Path, default=Path("/tmp/vlp-video-study"), help="where data, checkpoints and results go")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field in every experiment (model.video.* only where arch is video), e.g. train.max_steps=60")
    parser.add_argument("--eval-limit", type=int, default=None, help="score only the first N held-out clips and stills")
    parser.add_argument("--table-only", action="store_true", help="print the table of HOME/video-study*.json and stop")
    args = parser.parse_args(argv)
    if not args.experiments:
        parser.error("no experiments (none match experiments/video-*.yaml; pass --experiments)")
    from vlp.platform.spec.loading import load_spec

    experiments = registering_first(args.experiments)
    SHARED_DATA = next(spec for spec in map(load_spec, experiments) if spec.data.shapes is not None and spec.data.shapes.video is not None)
    results_path = args.home / f"video-study-seeds-{'-'.join(map(str, args.seeds))}.json"
    runs = json.loads(results_path.read_text()) if results_path.exists() else []
    if not args.table_only:
        args.home.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            for experiment in experiments:
                if any((run["experiment"], run["seed"]) == (experiment, seed) for run in runs):
                    continue
                checkpoints = {run["registers"]: run["checkpoint"] for run in runs if run["seed"] == seed and run.get("registers")}
                run = run_one(experiment, seed, args.home, args.overrides, checkpoints, args.eval_limit)
                runs.append(run)
                results_path.write_text(json.dumps(runs, indent=2))
                print(f"{Path(experiment).stem} seed {seed}: trained {run['steps']} steps in {run['train_seconds']} s, {run['total_seconds']} s in all", flush=True)
    every = [run for path in sorted(args.home.glob("video-study-seeds-*.json")) for run in json.loads(path.read_text())]
    print(table(sorted(every, key=lambda run: (experiments.index(run["experiment"]) if run["experiment"] in experiments else 99, run["seed"]))))


def registering_first(experiments: list[str]) -> list[str]:
    """Experiments another one starts from (`init_from: models:/NAME…` of a model this list registers) go first."""
    from vlp.platform.spec.loading import read_yaml_mapping

    documents = {experiment: read_yaml_mapping(experiment) for experiment in experiments}
    wanted = {str(document.get("model", {}).get("init_from") or "").removeprefix("models:/").split("@")[0] for document in documents.values()}
    return sorted(experiments, key=lambda experiment: (documents[experiment].get("register", {}).get("model_name") not in wanted, experiment))


SHARED_DATA = None


if __name__ == "__main__":
    main()
