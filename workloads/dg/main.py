"""torchrun entry point for one held-out domain of a DG study:
`python -m vlp.workloads.dg.main --storage-root URI --run-id ID --tracking-uri URI --dataset URI --held-out DOMAIN --pretrained REF`.

Parse, build (data, pretrained model, frozen features), run every method, write the results, close.
"""

from __future__ import annotations

import argparse
import json
import logging

from vlp.platform.layout import RunLayout
from vlp.platform.spec import spec_from_dict
from vlp.platform.storage import open_storage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="vlp domain-generalization worker (started by torchrun)")
    parser.add_argument("--storage-root", required=True)
    parser.add_argument("--run-id", required=True, help="the study's (parent) MLflow run")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--dataset", required=True, help="the domain-labelled dataset URI")
    parser.add_argument("--held-out", required=True)
    parser.add_argument("--pretrained", required=True, help="the pretrained VL model reference")
    parser.add_argument("--child-runs", default="{}", help='JSON {"method": run_id} to log each method into')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from vlp.platform.tracking.mlflow_tracker import MlflowTracker
    from vlp.workloads.dg.data import load_domain_data, open_dg_source
    from vlp.workloads.dg.method import frozen_image_features
    from vlp.workloads.dg.study import result_uri, run_held_out
    from vlp.workloads.evaluation.encode import image_transform
    from vlp.workloads.evaluation.model_source import load_model
    from vlp.workloads.train.distributed import close_distributed, init_distributed

    layout = RunLayout(args.storage_root, args.run_id)
    spec = spec_from_dict(json.loads(open_storage(layout.spec).read_bytes(layout.spec)), source=layout.spec)
    settings = spec.dg
    dist = init_distributed(spec.train.threads_per_proc)
    trackers = {}
    try:
        pretrained = load_model(args.pretrained, settings.pretrained_checkpoint, args.tracking_uri).built
        pretrained.model.requires_grad_(False)
        data = load_domain_data(open_dg_source(settings, args.dataset), image_transform(pretrained), tuple(settings.domains))
        frozen = frozen_image_features(pretrained, data)
        if dist.is_main:
            trackers = {method: MlflowTracker(run_id, args.tracking_uri) for method, run_id in json.loads(args.child_runs).items()}
        results = run_held_out(args.held_out, data, pretrained, frozen, settings, dist, spec.seed, trackers)
        if results is not None:
            uri = result_uri(layout, args.held_out)
            open_storage(uri).write_bytes(uri, json.dumps(results, indent=2).encode())
            summary = {method: round(result["test_acc"], 4) for method, result in results["methods"].items()}
            logging.getLogger("vlp.dg").info("held out %s: %s", args.held_out, summary)
    finally:
        for tracker in trackers.values():
            tracker.close()
        close_distributed()


if __name__ == "__main__":
    main()
