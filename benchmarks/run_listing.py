"""How long `vlp runs list` and `vlp models list` take on a store with 100 runs, beside `mlflow runs list` on the
same store, both on the local SQLite file (alone, and while `vlp ui` serves it: vlp's listings then ask its REST API)
and through an `mlflow server` over it (`vlp runs list` asks a server's REST API):
`python -m vlp.benchmarks.run_listing [--runs 100] [--repeats 5]` prints wall seconds per command (median and min
over the repeats, each a fresh process as a user would start it) and its CPU seconds (median)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def populate(home: Path, runs: int, versions: int) -> str:
    """`runs` finished runs in one experiment with params, metrics and vlp's tags, and `versions` registered
    versions of one model; returns the experiment id."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from vlp.platform.registry.versions import tag_version
    from vlp.platform.tracking.headline import headline_tag
    from vlp.platform.tracking.local_store import prepare_tracking_store

    uri = f"sqlite:///{home / 'mlflow.db'}"
    prepare_tracking_store(uri)
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("listing", artifact_location=(home / "mlartifacts").as_uri())
    tags = {**headline_tag(["zeroshot/shapes/acc1"]), "vlp.team": "default"}
    run_ids = []
    for index in range(runs):
        run = client.create_run(experiment_id, run_name=f"run-{index}", tags=tags)
        params = [Param(f"train.p{i}", str(i * index)) for i in range(60)]
        metrics = [Metric("train/loss", 4.0 / (step + 1), 0, step) for step in range(0, 500, 10)]
        metrics += [Metric(f"zeroshot/shapes/m{i}", index / runs, 0, 0) for i in range(20)] + [Metric("zeroshot/shapes/acc1", index / runs, 0, 0)]
        client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=[RunTag("vlp.run_key", f"key-{index}")])
        client.set_terminated(run.info.run_id)
        run_ids.append(run.info.run_id)
    client.create_registered_model("listing-clip")
    for index in range(versions):
        version = client.create_model_version("listing-clip", f"runs:/{run_ids[index]}/model", run_id=run_ids[index])
        tag_version("listing-clip", str(version.version), {"zeroshot/shapes/acc1": index / versions}, [], "hash", "commit", "candidate", uri)
    return experiment_id


def time_command(command: list[str], env: dict[str, str], repeats: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds of the process and its children) per fresh process; CPU time is what a loaded
    machine inflates least."""
    import resource

    seconds, cpu = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return seconds, cpu


def report(name: str, timings: tuple[list[float], list[float]]) -> None:
    seconds, cpu = timings
    print(f"{name:<46} {statistics.median(seconds):>9.2f} {min(seconds):>7.2f} {statistics.median(cpu):>7.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="vlp-listing-") as scratch:
        home = Path(scratch) / "home"
        home.mkdir()
        experiment_id = populate(home, args.runs, args.versions)
        env = {**os.environ, "VLP_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}
        commands = {
            "vlp runs list": [str(bin_dir / "vlp"), "runs", "list"],
            f"vlp runs list --limit {args.runs} --json": [str(bin_dir / "vlp"), "runs", "list", "--limit", str(args.runs), "--json"],
            "vlp models list": [str(bin_dir / "vlp"), "models", "list"],
            "mlflow runs list": [str(bin_dir / "mlflow"), "runs", "list", "--experiment-id", experiment_id],
            "python -c 'import mlflow'": [sys.executable, "-c", "import mlflow"],
        }
        print(f"store: {args.runs} runs (60 params, 71 metrics each), {args.versions} model versions; {args.repeats} fresh processes each")
        print(f"{'command':<46} {'median s':>9} {'min s':>7} {'cpu s':>7}")
        for name, command in commands.items():
            report(f"{name} (SQLite)", time_command(command, env, args.repeats))
        from vlp.benchmarks.loopback import free_port, start_service

        # `vlp ui` over the same store: vlp's listings ask its REST API instead of opening the SQLite store.
        port = free_port()
        ui_env = {key: value for key, value in env.items() if key != "MLFLOW_TRACKING_URI"}
        ui = start_service([str(bin_dir / "vlp"), "ui", "--port", str(port)], f"http://127.0.0.1:{port}", "/health", ui_env, home / "ui.log", timeout=300)
        try:
            for name in ("vlp runs list", "vlp models list"):
                report(f"{name} (SQLite, vlp ui up)", time_command(commands[name], ui_env, args.repeats))
        finally:
            ui.stop()
        port = free_port()
        server = start_service([str(bin_dir / "mlflow"), "server", "--backend-store-uri", env["MLFLOW_TRACKING_URI"], "--host", "127.0.0.1",
                                "--port", str(port), "--workers", "1"], f"http://127.0.0.1:{port}", "/health", env, home / "server.log")
        try:
            served = {**env, "MLFLOW_TRACKING_URI": server.url}
            for name in ("vlp runs list", "mlflow runs list"):
                report(f"{name} (server, REST)", time_command(commands[name], served, args.repeats))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
