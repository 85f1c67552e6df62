"""prepare-data → pretrain → evaluate → register, inside an exit handler that closes the MLflow run."""


from kfp import dsl

from vlp.pipelines import components, step_table

PIPELINE_NAME = "vlp-pretrain"


def build_pipeline(image: str, configure_step=None):
    """The pipeline function; `configure_step(task, step)` adds cluster settings (kfp-kubernetes) per task."""
    step = components.step_factory(step_table.steps_of("pretrain"), image, configure_step)

    @dsl.pipeline(name=PIPELINE_NAME, description="vlp: prepare data, pretrain, evaluate, register")
    def pretrain_pipeline(spec_json: str, runtime_json: str):
        # The exit task may not depend on other tasks: it finds the MLflow run by the submission's run key.
        closing = step["finish-run"](runtime_json=runtime_json)
        with dsl.ExitHandler(closing, name="run"):
            started = step["start-run"](spec_json=spec_json, runtime_json=runtime_json)
            data = step["prepare-data"](spec_json=spec_json, runtime_json=runtime_json, run_id=started.output)
            trained = step["pretrain"](spec_json=spec_json, runtime_json=runtime_json, run_id=started.output, train_uri=data.outputs["train_uri"])
            evaluated = step["evaluate"](
                spec_json=spec_json, runtime_json=runtime_json, run_id=started.output,
                checkpoint_uri=trained.output, eval_uri=data.outputs["eval_uri"],
            )
            step["register"](
                spec_json=spec_json, runtime_json=runtime_json, run_id=started.output,
                checkpoint_uri=trained.output, metrics_json=evaluated.output,
            )

    return pretrain_pipeline
