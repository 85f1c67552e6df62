"""vlp run's steps write their output to one log file each; kfp.local's own messages go to pipeline.log; the
console shows states, durations and the failing step's last lines."""

import io

from kfp import dsl

from vlp.cli.run_console import RunConsole, TrainingProgress, failure_report
from vlp.platform.backends.local_kfp import run_pipeline_locally
from vlp.platform.backends.step_logs import StepLogs, step_name


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def chatty(words: str) -> str:
    import sys

    print(f"said {words}")
    print(f"warned {words}", file=sys.stderr)
    return words


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def breaks(words: str) -> str:
    print(f"about to fail after {words}")
    raise RuntimeError("this step fails on purpose")


@dsl.pipeline
def chatty_then_breaks(words: str):
    first = chatty(words=words)
    first.set_caching_options(False)
    second = breaks(words=first.output)
    second.set_caching_options(False)


def test_step_output_goes_to_its_log_and_nothing_reaches_stdout(tmp_path, capfd):
    step_logs = StepLogs(tmp_path / "logs")
    run_pipeline_locally(chatty_then_breaks, {"words": "hello"}, tmp_path / "root", step_logs=step_logs)
    captured = capfd.readouterr()
    assert captured.out == "" and "Executing task" not in captured.err and "RuntimeWarning" not in captured.err
    assert [(record.name, record.state) for record in step_logs.steps] == [("chatty", "done"), ("breaks", "failed")]
    chatty_log = (tmp_path / "logs" / "chatty.log").read_text()
    assert "said hello" in chatty_log and "warned hello" in chatty_log
    assert "this step fails on purpose" in (tmp_path / "logs" / "breaks.log").read_text()
    pipeline_log = step_logs.pipeline_log.read_text()
    assert "Executing task" in pipeline_log and "Running pipeline" in pipeline_log
    report = failure_report(step_logs)
    assert report[0].startswith("step breaks failed (exit 1); last lines of") and str(tmp_path / "logs" / "breaks.log") in report[0]
    assert any("RuntimeError: this step fails on purpose" in line for line in report[1:])


def test_verbose_streams_every_step_line(tmp_path):
    echo = io.StringIO()
    run_pipeline_locally(chatty_then_breaks, {"words": "loud"}, tmp_path / "root", step_logs=StepLogs(tmp_path / "logs", echo=echo))
    assert "said loud" in echo.getvalue() and "about to fail after loud" in echo.getvalue() and "Executing task" in echo.getvalue()


class _NoTraining:
    progress = None

    def poll(self):
        return None


def test_the_plain_console_prints_one_line_per_state_change(tmp_path):
    out = io.StringIO()
    console = RunConsole(["chatty", "breaks"], tmp_path / "logs", _NoTraining(), set(), out=out)
    with console:
        record = console.step_logs.start("chatty")
        console.step_logs.finish(record, 0)
        console.step_logs.finish(console.step_logs.start("breaks"), 1)
    assert out.getvalue().splitlines() == ["chatty: running", "chatty: done in 0s", "breaks: running", "breaks: failed in 0s"]
    assert "\x1b[" not in out.getvalue()


def test_training_progress_reads_as_a_bar_caption_and_step_names_come_from_the_executor_call():
    assert TrainingProgress(120, 500, 2.345678, 1234.5, 75).describe() == "step 120/500  loss 2.3457  1,234 samples/s  1m15s left"
    assert TrainingProgress(3).describe() == "step 3"
    assert step_name(["--executor_input", "{}", "--function_to_execute", "prepare_data"]) == "prepare-data"
