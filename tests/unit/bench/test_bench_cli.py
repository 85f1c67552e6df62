"""`vlp bench …` end to end on the cheapest benchmark, and the kfp.local log parsing of the orchestration bench."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from vlp.cli.main import app
from vlp.benchmarks.orchestration import task_durations

KFP_LOCAL_LOG = """\
16:19:28.670 - INFO - Running pipeline: \x1b[95m'vlp-pretrain'\x1b[0m
16:19:28.678 - INFO - Executing task \x1b[96m'start-run'\x1b[0m
    [KFP Executor 2026-11-26 16:19:28,899 INFO]: Looking for component `start_run`
16:19:45.715 - INFO - Task \x1b[96m'start-run'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m
16:19:45.716 - INFO - Executing task \x1b[96m'prepare-data'\x1b[0m
16:20:04.382 - INFO - Task \x1b[96m'prepare-data'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m
23:59:59.500 - INFO - Executing task \x1b[96m'finish-run'\x1b[0m
00:00:01.000 - INFO - Task \x1b[96m'finish-run'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m
"""


def test_task_durations_from_kfp_local_log():
    durations = task_durations(KFP_LOCAL_LOG)
    assert list(durations) == ["start-run", "prepare-data", "finish-run"]
    assert abs(durations["start-run"] - 17.037) < 1e-6
    assert abs(durations["prepare-data"] - 18.666) < 1e-6
    assert abs(durations["finish-run"] - 1.5) < 1e-6  # across midnight


def test_bench_command_prints_a_table_and_writes_json(tmp_path):
    result = CliRunner().invoke(app, ["bench", "checkpoint-transfer", "--size-mb", "1", "--repeats", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "write: multipart" in result.output and "wrote" in result.output
    (path,) = tmp_path.glob("checkpoint-transfer-*.json")
    report = json.loads(path.read_text())
    assert [row["transfer"] for row in report["rows"]] == ["write: one PUT", "write: multipart", "write: vlp write_bytes", "read: one GET", "read: ranged parts"]
    assert all(row["mb_per_second"] > 0 for row in report["rows"]) and len(report["runs"]) == 5
    assert report["environment"]["load_average_start"] is not None
