"""The arithmetic every benchmark reports with, and the JSON shape of a report."""

from __future__ import annotations

import json

import pytest

from vlp.benchmarks.report import SCHEMA_VERSION, BenchReport, Column
from vlp.benchmarks.stats import alternating, cpu_rate, ratio, steady_rate, summarize


def test_summarize_takes_the_median_and_ignores_missing_runs():
    assert summarize([3.0, None, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert summarize([4.0, 1.0]) ["median"] == 2.5
    assert summarize([]) == {"median": None, "min": None, "max": None, "n": 0}


def test_ratio_is_none_when_it_cannot_be_computed():
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None and ratio(1.0, None) is None and ratio(1.0, 0.0) is None


def test_runs_alternate_a_b_a_b():
    assert alternating(["vlp", "open_clip"], 2) == [(0, "vlp"), (0, "open_clip"), (1, "vlp"), (1, "open_clip")]
    with pytest.raises(ValueError):
        alternating(["a"], 0)


def test_steady_rate_leaves_the_first_steps_out():
    # Step 0 took 10 s (start-up), then one step per 0.5 s: 4 steps of 8 samples in 2 s after step 0.
    stamps = [10.0, 10.5, 11.0, 11.5, 12.0]
    assert steady_rate(stamps, samples_per_step=8, skip_steps=0) == pytest.approx(4 * 8 / 2.0)
    assert steady_rate(stamps, samples_per_step=8, skip_steps=2) == pytest.approx(2 * 8 / 1.0)
    assert steady_rate(stamps[:2], samples_per_step=8, skip_steps=1) is None  # nothing left to time
    with pytest.raises(ValueError):
        steady_rate(stamps, 8, -1)


def test_report_json_has_every_part(tmp_path):
    report = BenchReport(
        name="demo", title="Demo", settings={"batch_size": 4},
        columns=[Column("system", "system"), Column("rate", "samples/s", "{:.1f}")],
        rows=[{"system": "vlp", "rate": 12.345}, {"system": "open_clip", "rate": None}],
        summary={"vlp_over_open_clip": None},
    )
    report.runs.append({"system": "vlp", "repeat": 0})
    path = report.finish().write(tmp_path)
    document = json.loads(path.read_text())
    assert path.name.startswith("demo-") and path.suffix == ".json"
    assert document["schema"] == SCHEMA_VERSION
    assert set(document) == {"schema", "name", "title", "settings", "columns", "rows", "summary", "notes", "runs", "environment"}
    assert document["columns"][1] == {"key": "rate", "header": "samples/s", "format": "{:.1f}"}
    environment = document["environment"]
    for key in ("load_average_start", "load_average_end", "cpu_count", "torch", "git_commit", "bench_seconds"):
        assert key in environment
    assert report.columns[1].render(12.345) == "12.3" and report.columns[1].render(None) == "–"


def test_cpu_rate_sums_the_cpu_time_of_every_process():
    # Two processes, 8 samples per step in all; after step 1 each spends 1 CPU-second per step.
    rank0, rank1 = [5.0, 6.0, 7.0, 8.0], [4.0, 5.0, 6.0, 7.0]
    assert cpu_rate([rank0, rank1], samples_per_step=8, skip_steps=1) == pytest.approx(2 * 8 / 4.0)
    assert cpu_rate([rank0[:2]], 8, 1) is None


def test_compilation_pays_after_its_extra_start_up_divided_by_the_time_saved_per_step():
    from vlp.benchmarks.training_throughput import compile_break_even

    eager, compiled = {"samples_per_second": 1000.0, "startup_seconds": 10.0}, {"samples_per_second": 1250.0, "startup_seconds": 70.0}
    # 256 samples: 0.256 s a step eager, 0.2048 s compiled; 60 s more start-up / 0.0512 s saved per step.
    assert compile_break_even(eager, compiled, 256) == pytest.approx(60 / 0.0512)
    assert compile_break_even(eager, {"samples_per_second": 900.0, "startup_seconds": 70.0}, 256) is None
