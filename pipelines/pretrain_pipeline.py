"""prepare-data → pretrain → evaluate → register, inside an exit handler that closes the MLflow run."""


from kfp import dsl

from vlp.pipelines import components

PIPELINE_NAME = "vlp-pretrain"


def build_pipeline(image: str, configure_step=None):
    """The pipeline function; `configure_step(task, step_name)` adds cluster settings (kfp-kubernetes) per task."""
    step, configured = components.step_factory(components.STEP_FUNCTIONS, image, configure_step)

    @dsl.pipeline(name=PIPELINE_NAME, description="vlp: prepare data, pretrain, evaluate, register")
    def pretrain_pipeline(spec_json: str, runtime_json: str):
        # The exit task may not depend on other tasks: it finds the MLflow run by the submission's run key.
        closing = configured(step["finish_run"](runtime_json=runtime_json), "finish-run")
        with dsl.ExitHandler(closing, name="run"):
            started = configured(step["start_run"](spec_json=spec_json, runtime_json=runtime_json), "start-run")
            data = configured(step["prepare_data"](spec_json=spec_json, runtime_json=runtime_json, run_id=started.output), "prepare-data")
            trained = configured(
                step["pretrain"](spec_json=spec_json, runtime_json=runtime_json, run_id=started.output, train_uri=data.outputs["train_uri"]),
                "pretrain",
            )
            evaluated = configured(
                step["evaluate"](
                    spec_json=spec_json, runtime_json=runtime_json, run_id=started.output,
                    checkpoint_uri=trained.output, eval_uri=data.outputs["eval_uri"],
                ),
                "evaluate",
            )
            configured(
                step["register"](
                    spec_json=spec_json, runtime_json=runtime_json, run_id=started.output,
                    checkpoint_uri=trained.output, metrics_json=evaluated.output,
                ),
                "register",
            )

    return pretrain_pipeline
