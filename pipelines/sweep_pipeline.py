"""A sweep as one pipeline: start-sweep (the parent MLflow run, the trials) → ParallelFor over the trials, at most
`sweep.parallelism` at a time: sweep-trial (the trial's experiment and runtime) → the workload's own pipeline →
inside an exit handler, finish-sweep (best child tagged, the table logged, the parent closed) whatever the trials did.

The same pipeline runs under kfp.local (`vlp run`) and on Kubeflow Pipelines (`vlp submit`)."""

from kfp import dsl

from vlp.pipelines import components, step_table

PIPELINE_NAME = "vlp-sweep"


def build_pipeline(image: str, workload_pipeline, parallelism: int, configure_step=None):
    """`workload_pipeline`: the pipeline each trial runs (a KFP graph component, built with the same `configure_step`)."""
    step = components.step_factory(step_table.SWEEP_STEPS, image, configure_step)

    @dsl.pipeline(name=PIPELINE_NAME, description="vlp: a sweep, one child run per trial of the experiment")
    def sweep_pipeline(spec_json: str, runtime_json: str):
        # The exit task may not depend on other tasks: it finds the parent run by the sweep's run key.
        closing = step["finish-sweep"](spec_json=spec_json, runtime_json=runtime_json)
        with dsl.ExitHandler(closing, name="sweep"):
            started = step["start-sweep"](spec_json=spec_json, runtime_json=runtime_json)
            # kfp.local loops only over a step's single `Output`: the trials; each trial finds the parent by run key.
            with dsl.ParallelFor(started.output, parallelism=parallelism, name="trials") as trial_json:
                trial = step["sweep-trial"](spec_json=spec_json, runtime_json=runtime_json, trial_json=trial_json)
                workload_pipeline(spec_json=trial.outputs["spec_json"], runtime_json=trial.outputs["runtime_json"])

    return sweep_pipeline
