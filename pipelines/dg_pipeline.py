"""dg-data → dg-domains → dg-pretrained → one dg-train per held-out domain (ParallelFor) → dg-report, inside an exit handler
that closes the study's MLflow run."""

from kfp import dsl

from vlp.pipelines import components, step_table

PIPELINE_NAME = "vlp-dg"


def build_pipeline(image: str, configure_step=None):
    """The pipeline function; `configure_step(task, step)` adds cluster settings (kfp-kubernetes) per task."""
    step = components.step_factory(step_table.steps_of("dg"), image, configure_step)

    @dsl.pipeline(name=PIPELINE_NAME, description="vlp: leave-one-domain-out domain generalization (zero-shot, ERM, InDiGo)")
    def dg_pipeline(spec_json: str, runtime_json: str):
        # The exit task may not depend on other tasks: it finds the MLflow run by the submission's run key.
        closing = step["finish-run"](runtime_json=runtime_json)
        with dsl.ExitHandler(closing, name="run"):
            started = step["start-run"](spec_json=spec_json, runtime_json=runtime_json)
            data = step["dg-data"](spec_json=spec_json, runtime_json=runtime_json, run_id=started.output)
            domains = step["dg-domains"](spec_json=spec_json, runtime_json=runtime_json, run_id=started.output, dataset_uri=data.output)
            pretrained = step["dg-pretrained"](spec_json=spec_json, runtime_json=runtime_json, run_id=started.output)
            # One job per held-out domain; on a cluster they run side by side, kfp.local (2.17) runs two at a time.
            with dsl.ParallelFor(domains.output, name="held-out-domains") as held_out:
                # Only the loop item and pipeline parameters go in (see pipelines/steps/dg_train.py for why).
                trained = step["dg-train"](spec_json=spec_json, runtime_json=runtime_json, held_out=held_out).after(pretrained)
            step["dg-report"](spec_json=spec_json, runtime_json=runtime_json, run_id=started.output, domain_results=dsl.Collected(trained.output))

    return dg_pipeline
