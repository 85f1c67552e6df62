"""DG report step: gather every held-out domain's results into DomainBed's table and log it on the study's run
(metrics `dg/<method>/<domain>` and `dg/<method>/avg`, the table, the results and a per-domain bar chart)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from vlp.pipelines.steps.context import decode, storage_root
from vlp.platform.layout import RunLayout
from vlp.platform.storage import join, open_storage
from vlp.platform.tracking.runs import client


def run(spec_json: str, runtime_json: str, run_id: str, domain_results: list) -> str:
    """Returns the table (markdown)."""
    from vlp.workloads.dg.table import METHOD_LABELS, accuracy_table, flat_metrics, markdown_table
    from vlp.workloads.evaluation import plots

    spec, runtime = decode(spec_json, runtime_json)
    results = sorted((json.loads(item) if isinstance(item, str) else item for item in domain_results), key=lambda result: result["held_out"])
    table = markdown_table(results)
    layout = RunLayout(storage_root(spec, runtime), run_id)
    for name, content in (("table.md", table), ("results.json", json.dumps(results, indent=2))):
        uri = join(layout.results, "dg", name)
        open_storage(uri).write_bytes(uri, content.encode())
    mlflow_client = client(runtime.tracking_uri)
    for key, value in flat_metrics(results).items():
        mlflow_client.log_metric(run_id, key, value)
    mlflow_client.log_text(run_id, table, "dg/table.md")
    mlflow_client.log_text(run_id, json.dumps(results, indent=2), "dg/results.json")
    with tempfile.TemporaryDirectory() as scratch:
        series = {METHOD_LABELS.get(method, method): values for method, values in accuracy_table(results).items()}
        chart = plots.grouped_bars(series, f"{spec.name}: held-out domain accuracy", "acc1", Path(scratch) / "dg-per-domain.png")
        mlflow_client.log_artifact(run_id, str(chart), "plots")
    return table
