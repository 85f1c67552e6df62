"""KFP lightweight components, one per step. Each body is an import and a call: the work lives in
`vlp.pipelines.steps`, so it runs the same under kfp.local and in a cluster pod (KFP ships only the
function's source; the image has vlp installed). Which step is which, and its kind, is `step_table.py`.

Each body first installs the run's shipped working tree over the image's vlp (`vlp submit` ships it unless
`--no-ship`; see `vlp.platform.workspace`), so the step runs the code that was submitted."""


from typing import List, NamedTuple

from kfp import dsl


def start_run(spec_json: str, runtime_json: str) -> str:
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import start_run

    return start_run.run(spec_json, runtime_json)


def prepare_data(spec_json: str, runtime_json: str, run_id: str) -> NamedTuple("PreparedData", [("train_uri", str), ("eval_uri", str)]):
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import prepare_data

    return prepare_data.run(spec_json, runtime_json, run_id)


def pretrain(spec_json: str, runtime_json: str, run_id: str, train_uri: str) -> str:
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import pretrain

    return pretrain.run(spec_json, runtime_json, run_id, train_uri)


def evaluate(spec_json: str, runtime_json: str, run_id: str, checkpoint_uri: str, eval_uri: str) -> str:
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import evaluate

    return evaluate.run(spec_json, runtime_json, run_id, checkpoint_uri, eval_uri)


def register(spec_json: str, runtime_json: str, run_id: str, checkpoint_uri: str, metrics_json: str) -> str:
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import register

    return register.run(spec_json, runtime_json, run_id, checkpoint_uri, metrics_json)


def finish_run(runtime_json: str, status: dsl.PipelineTaskFinalStatus) -> str:
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import finish_run

    return finish_run.run(runtime_json, status.state, status.error_message or "")



def dg_data(spec_json: str, runtime_json: str, run_id: str) -> str:
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import dg_data

    return dg_data.run(spec_json, runtime_json, run_id)


def dg_domains(spec_json: str, runtime_json: str, run_id: str, dataset_uri: str) -> List[str]:
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import dg_data

    return dg_data.held_out_domains(spec_json, runtime_json, run_id, dataset_uri)


def dg_pretrained(spec_json: str, runtime_json: str, run_id: str) -> str:
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import dg_pretrained

    return dg_pretrained.run(spec_json, runtime_json, run_id)


def dg_train(spec_json: str, runtime_json: str, held_out: str) -> str:
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import dg_train

    return dg_train.run(spec_json, runtime_json, held_out)


def dg_report(spec_json: str, runtime_json: str, run_id: str, domain_results: List[str]) -> str:
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import dg_report

    return dg_report.run(spec_json, runtime_json, run_id, domain_results)


def start_sweep(spec_json: str, runtime_json: str) -> List[str]:
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import sweep

    return sweep.start(spec_json, runtime_json)


def sweep_trial(spec_json: str, runtime_json: str, trial_json: str) -> NamedTuple("SweepTrial", [("spec_json", str), ("runtime_json", str)]):
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import sweep

    return sweep.trial(spec_json, runtime_json, trial_json)


def finish_sweep(spec_json: str, runtime_json: str, status: dsl.PipelineTaskFinalStatus) -> str:
    from vlp.platform.workspace import use_shipped_code

    use_shipped_code(runtime_json)
    from vlp.pipelines.steps import sweep

    return sweep.finish(spec_json, runtime_json, status.state)


def as_component(function, image: str):
    # No `pip install kfp` in the step: the image (or the local interpreter) already has vlp and kfp.
    return dsl.component(function, base_image=image, install_kfp_package=False)


def step_factory(steps, image: str, configure_step=None):
    """{step name: make(**arguments) -> task} for the steps of `step_table`. Every task has caching off (every step
    reads and writes MLflow) and gets `configure_step(task, step)`, the cluster settings (kfp-kubernetes), if given."""

    def task_maker(step):
        component = as_component(step.function, image)

        def make(**arguments):
            task = component(**arguments)
            task.set_caching_options(False)
            if configure_step is not None:
                configure_step(task, step)
            return task

        return make

    return {step.name: task_maker(step) for step in steps}
