"""The claim studies of docs/results-models.md (GGeM, PACL) and docs/results-fusion.md in one command each: every
arm at every seed under `vlp run`, then the claims' metrics as mean ± sample standard deviation over the seeds.

    python -m vlp.benchmarks.claim_study {ggem,pacl,fusion} [--seeds 0 1 2] [--home DIR] [--parallel N] [--table-only]

An arm is an experiment file plus `--set` overrides; each (arm, seed) is `vlp run EXPERIMENT --set seed=S ... --json`
with `VLP_HOME=DIR`, and its metrics are kept in DIR/claim-study.json as soon as it ends: an interrupted study
continues where it stopped, and a study borrows another's arm by its runs (PACL's and the fusion study's CLIP
baseline is GGeM's `cls` arm: run `ggem` first).
An arm may start from another arm's checkpoint of the same seed (`init_from`), and every finished run is scored
again on colour classes by `vlp eval` (metric names prefixed `colour:`): the tiny ViTs of these studies learn
colour within their budget, shape barely. Every process runs one intra-op thread (OMP_NUM_THREADS=1 and the
experiments' `train.threads_per_proc: 1`): on the shared, oversubscribed machine a second thread mostly waits.
"""

from __future__ import annotations

import argparse
import json
import statistics
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path


BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Arm:
    name: str
    experiment: str
    overrides: tuple[str, ...] = ()
    init_from: str | None = None
    """Another arm whose checkpoint (same seed) becomes `model.init_from`."""

    def key(self, seed: int) -> str:
        return " ".join((self.experiment, *self.overrides, f"init_from={self.init_from}" if self.init_from else "", f"seed={seed}")).replace("  ", " ")


@dataclass(frozen=True)
class Study:
    arms: tuple[Arm, ...]
    columns: tuple[tuple[str, str], ...]
    """(column label, metric name)."""
    borrowed: tuple[Arm, ...] = ()
    """Arms of another study shown first in this one's table, from that study's runs (run it first)."""


GGEM = "experiments/ggem-pooling.yaml"
CLIP_CLS = Arm("cls", GGEM, ("model.pooling=cls",))
CLIP_MEAN = Arm("mean", GGEM, ("model.pooling=mean",))
CLIP_GGEM = Arm("ggem", GGEM)
# The fusion experiments' own budget (shapes-vit-tiny, 300 steps) took ~20 min a run on the shared 2-core machine:
# the study runs them on GGeM's budget instead (the micro towers, 120 steps of 64 pairs, no figures).
FUSION_BUDGET = ("model.preset=shapes-vit-micro", "train.threads_per_proc=1", "train.batch_size=64", "train.max_steps=120", "train.warmup_steps=12", "train.checkpoint_every=120", "eval.plots=false")
FUSION_COLUMNS = (
    ("zero-shot shape acc1", "zeroshot/shapes/acc1"),
    ("zero-shot colour acc1", "colour:zeroshot/shapes/acc1"),
    ("probe shape acc1", "linear_probe/shapes/lp_acc1"),
    ("T→I R@1", "retrieval/shapes/image_retrieval_recall_at_1"),
    ("VQA acc1", "vqa/shapes/acc1"),
    ("VQA prior", "vqa/shapes/prior_acc1"),
    ("T→I R@1 before ITM", "itm_rerank/shapes/before/image_retrieval_recall_at_1"),
    ("T→I R@1 after ITM", "itm_rerank/shapes/image_retrieval_recall_at_1"),
    ("I→T R@1 before ITM", "itm_rerank/shapes/before/text_retrieval_recall_at_1"),
    ("I→T R@1 after ITM", "itm_rerank/shapes/text_retrieval_recall_at_1"),
)
STUDIES = {
    "ggem": Study(
        arms=(CLIP_CLS, CLIP_MEAN, CLIP_GGEM),
        columns=(
            ("zero-shot shape acc1", "zeroshot/shapes/acc1"),
            ("zero-shot colour acc1", "colour:zeroshot/shapes/acc1"),
            ("T→I R@1", "retrieval/shapes/image_retrieval_recall_at_1"),
            ("I→T R@1", "retrieval/shapes/text_retrieval_recall_at_1"),
            ("probe shape acc1", "linear_probe/shapes/lp_acc1"),
            ("probe colour acc1", "colour:linear_probe/shapes/lp_acc1"),
        ),
    ),
    "pacl": Study(
        borrowed=(CLIP_CLS, CLIP_MEAN, CLIP_GGEM),
        arms=(
            Arm("pacl, scratch", "experiments/pacl-segmentation.yaml"),
            Arm("pacl, frozen clip", "experiments/pacl-frozen-backbone.yaml", init_from="cls"),
        ),
        columns=(
            ("colour mIoU", "colour:segmentation/shapes/miou"),
            ("colour mIoU fg", "colour:segmentation/shapes/miou_foreground"),
            ("colour pixel acc", "colour:segmentation/shapes/pixel_acc"),
            ("shape mIoU", "segmentation/shapes/miou"),
            ("shape mIoU fg", "segmentation/shapes/miou_foreground"),
        ),
    ),
    "fusion": Study(
        borrowed=(CLIP_CLS,),
        arms=(
            Arm("METER co-attention (MLM + ITM)", "experiments/fusion-meter-coattention.yaml", FUSION_BUDGET),
            Arm("METER merged (MLM + ITM)", "experiments/fusion-meter-merged.yaml", FUSION_BUDGET),
            Arm("VLC (MIM + MLM + ITM, merged)", "experiments/fusion-vlc.yaml", FUSION_BUDGET),
            Arm("FLAVA (all five terms)", "experiments/fusion-flava.yaml", FUSION_BUDGET),
        ),
        columns=FUSION_COLUMNS,
    ),
}


def run_arm(arm: Arm, seed: int, home: Path, runs: dict[str, dict]) -> dict:
    overrides = [f"seed={seed}", *arm.overrides]
    if arm.init_from is not None:
        checkpoint = wait_for_checkpoint(next(other for other in all_arms() if other.name == arm.init_from).key(seed), home)
        if checkpoint is None:
            return {"status": "FAILED", "error": f"no checkpoint of arm {arm.init_from!r} seed {seed}"}
        overrides.append(f"model.init_from={checkpoint}")
    command = [str(BIN / "vlp"), "run", arm.experiment, *(part for item in overrides for part in ("--set", item)), "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, "VLP_HOME": str(home), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        document = {"status": "FAILED", "error": (done.stderr or done.stdout)[-2000:]}
    document |= {"arm": arm.name, "seed": seed, "seconds": round(time.perf_counter() - started, 1)}
    if document.get("status") == "FINISHED":
        document["metrics"] = {**logged_metrics(document, home), **colour_metrics(document, home)}
    return document


def logged_metrics(run: dict, home: Path) -> dict[str, float]:
    """Every metric the run logged, last value (`vlp run --json` reports only the zero-shot and retrieval ones)."""
    import sqlite3

    with sqlite3.connect(home / "mlflow.db") as db:
        return dict(db.execute("select key, value from latest_metrics where run_uuid = ?", (run.get("run_id"),)).fetchall())


def wait_for_checkpoint(key: str, home: Path, patience: float = 1800.0) -> str | None:
    """The checkpoint of the run recorded under `key`, waiting while another study (or this one) may still run it."""
    deadline = time.monotonic() + patience
    while True:
        run = load_results_by_key(home / "claim-study.json").get(key, {})
        if run.get("status") == "FINISHED" or time.monotonic() > deadline:
            return checkpoint_of(run, home) if run.get("status") == "FINISHED" else None
        time.sleep(20)


def colour_metrics(run: dict, home: Path) -> dict[str, float]:
    """The run's checkpoint on its evaluation set with colour as the class (`vlp eval`), names prefixed `colour:`."""
    checkpoint, data = checkpoint_of(run, home), eval_data_of(run, home)
    if checkpoint is None or data is None:
        return {}
    command = [str(BIN / "vlp"), "eval", checkpoint, data, "--label-field", "colour", "--dataset", "shapes", "--no-track", "--json",
               "--task", "zeroshot", "--task", "linear_probe", "--task", "segmentation"]
    done = subprocess.run(command, env={**os.environ, "VLP_HOME": str(home), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"colour evaluation of {run.get('run_id')} failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
        return {}
    from vlp.workloads.evaluation.publish import flat_metrics

    return {f"colour:{name}": value for name, value in flat_metrics(json.loads(done.stdout)["results"]).items()}


def checkpoint_of(run: dict, home: Path) -> str | None:
    pointer = home / "storage" / "runs" / str(run.get("run_id")) / "checkpoints" / "latest.json"
    return json.loads(pointer.read_text())["uri"] if pointer.exists() else None


def eval_data_of(run: dict, home: Path) -> str | None:
    """The evaluation dataset the run used (its `vlp.data.eval` tag)."""
    import sqlite3

    with sqlite3.connect(home / "mlflow.db") as db:
        row = db.execute("select value from tags where run_uuid = ? and key = 'vlp.data.eval'", (run.get("run_id"),)).fetchone()
    return row[0] if row else None


def all_arms() -> list[Arm]:
    return [arm for study in STUDIES.values() for arm in study.arms]


def table(study: Study, runs: dict[str, dict], seeds: list[int]) -> str:
    """Markdown: one row per arm, mean ± sample std over its finished seeds."""
    lines = ["| arm | " + " | ".join(label for label, _ in study.columns) + " | seeds |", "|---|" + "---:|" * (len(study.columns) + 1)]
    for arm in (*study.borrowed, *study.arms):
        finished = [(seed, runs[arm.key(seed)]) for seed in seeds if runs.get(arm.key(seed), {}).get("status") == "FINISHED"]
        cells = [cell([run["metrics"].get(name) for _, run in finished]) for _, name in study.columns]
        lines.append(f"| {arm.name} | " + " | ".join(cells) + f" | {','.join(str(seed) for seed, _ in finished)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--home", type=Path, default=Path("/tmp/vlp-claim-study"), help="VLP_HOME of the runs")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (an arm that starts from another waits for it)")
    parser.add_argument("--arm", action="append", default=[], help="run only this arm (repeatable; its name in the table)")
    parser.add_argument("--own-budget", action="store_true", help="fusion: the experiment files' own budget instead of GGeM's")
    parser.add_argument("--table-only", action="store_true", help="print the table of the runs so far and stop")
    args = parser.parse_args(argv)
    study = STUDIES[args.study]
    if args.own_budget:
        study = replace(study, arms=tuple(replace(arm, overrides=tuple(item for item in arm.overrides if item not in FUSION_BUDGET)) for arm in study.arms))
    results = args.home / "claim-study.json"
    runs = load_results_by_key(results)
    for run in runs.values():  # runs recorded before every logged metric was kept
        if run.get("status") == "FINISHED":
            run["metrics"] = {**logged_metrics(run, args.home), **run["metrics"]}
    if not args.table_only:
        args.home.mkdir(parents=True, exist_ok=True)
        chosen = [arm for arm in study.arms if not args.arm or arm.name in args.arm]
        pending = [(arm, seed) for seed in args.seeds for arm in chosen if runs.get(arm.key(seed), {}).get("status") != "FINISHED"]
        # Arms that start from another arm's checkpoint go last (and wait for it, see wait_for_checkpoint).
        pending.sort(key=lambda job: job[0].init_from is not None)
        lock = threading.Lock()

        def one(job: tuple[Arm, int]) -> None:
            arm, seed = job
            run = run_arm(arm, seed, args.home, runs) | {"key": arm.key(seed)}
            with lock:
                runs.update({**load_results_by_key(results), run["key"]: run})  # other studies may share the file
                results.write_text(json.dumps(list(runs.values()), indent=2))
            print(f"{arm.name} seed {seed}: {run.get('status')} in {run.get('seconds')} s {run.get('error', '')}", flush=True)

        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            list(pool.map(one, pending))
    print(table(study, runs, args.seeds))


def load_results_by_key(path: Path) -> dict[str, dict]:
    return {run["key"]: run for run in json.loads(path.read_text())} if path.exists() else {}


def cell(values: list[float | None]) -> str:
    """mean ± sample standard deviation of the values that exist."""
    values = [value for value in values if value is not None]
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "–"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


if __name__ == "__main__":
    main()
