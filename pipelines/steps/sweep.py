"""The sweep pipeline's own steps: open the parent run and list the trials, give one trial its experiment and
runtime, and close the sweep (best child, table, parent status). Each trial in between is the workload's own
pipeline, so a trial runs exactly as `vlp run` of that experiment would."""

from __future__ import annotations

import json

from vlp.pipelines.steps.context import decode
from vlp.platform.runtime import SweepTrialRef
from vlp.platform.spec.loading import trial_specs
from vlp.platform.tracking import sweeps
from vlp.platform.tracking.runs import find_run_by_key


def start(spec_json: str, runtime_json: str) -> list[str]:
    """Opens the parent run; returns the trials as JSON items `{"number": n, "values": {path: value}}` for the ParallelFor."""
    spec, runtime = decode(spec_json, runtime_json)
    sweeps.open_parent_run(spec, runtime)
    return [json.dumps({"number": number, "values": values}) for number, values in enumerate(spec.sweep.assignments(), 1)]


def trial(spec_json: str, runtime_json: str, trial_json: str) -> tuple[str, str]:
    """(the trial's experiment JSON, its runtime JSON): the experiment without `sweep:` and with the trial's values,
    run under a run key of its own as a child of the parent run."""
    spec, runtime = decode(spec_json, runtime_json)
    number = json.loads(trial_json)["number"]
    parent_run_id = find_run_by_key(runtime.run_key, runtime.tracking_uri)
    _, trial_spec = trial_specs(spec)[number - 1]
    trial_runtime = runtime.model_copy(update={"run_key": sweeps.trial_run_key(runtime.run_key, number),
                                               "sweep_trial": SweepTrialRef(parent_run_id=parent_run_id, number=number)})
    return json.dumps(trial_spec.model_dump(mode="json", by_alias=True)), trial_runtime.model_dump_json()


def finish(spec_json: str, runtime_json: str, pipeline_state: str) -> str:
    """The exit handler: closes the sweep (see `vlp.platform.tracking.sweeps.close_sweep`); returns the best run id."""
    spec, runtime = decode(spec_json, runtime_json)
    return sweeps.close_sweep(spec, runtime, pipeline_state).best_run_id or ""
