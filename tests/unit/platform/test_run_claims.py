"""Who may work on a run: `vlp run --resume` refuses (or waits) while another resume or a training job holds the
run, and a failed multi-node launch names the nodes that never joined its rendezvous."""

from __future__ import annotations

import threading
import time

import pytest

from vlp.pipelines.local_run import RunBusy, claim_for_resume
from vlp.platform.launch.torchx_launcher import missing_nodes_reason
from vlp.platform.layout import RunLayout
from vlp.platform.storage.lease import RunLease

TIMEOUT_LINE = "torch.distributed.elastic.rendezvous.api.RendezvousTimeoutError"


def test_a_second_resume_is_refused_naming_the_first(tmp_path):
    layout = RunLayout(str(tmp_path), "a" * 32)
    first = claim_for_resume(layout, wait=False)
    with pytest.raises(RunBusy, match=rf"run {'a' * 32} is already being resumed by host \S+ pid \d+, last heartbeat 0 s ago .*--wait"):
        claim_for_resume(layout, wait=False)
    first.release()
    claim_for_resume(layout, wait=False).release()


def test_resume_waits_for_a_live_training_job_or_refuses_without_wait(tmp_path):
    layout = RunLayout(str(tmp_path), "b" * 32)
    job = RunLease(layout.training_lease, "job-1")
    job.acquire()
    with pytest.raises(RunBusy, match="is still being trained by host"):
        claim_for_resume(layout, wait=False)
    assert RunLease(layout.resume_lease, "x").holder() is None  # the refused resume let its claim go

    said = []
    threading.Timer(0.3, job.release).start()
    started = time.monotonic()
    claim = claim_for_resume(layout, wait=True, announce=said.append)
    assert time.monotonic() - started >= 0.3
    assert said and said[0].startswith(f"waiting: run {'b' * 32} is still being trained by host")
    assert RunLease(layout.resume_lease, "x").holder().token == claim.token
    claim.release()


def test_the_missing_nodes_are_those_that_did_not_wait_in_the_rendezvous():
    waited = ["W agent: starting", TIMEOUT_LINE + ": the rendezvous timed out"]
    assert missing_nodes_reason({0: waited, 1: None}, 30) == " | rendezvous timed out after 30 s: node 1 never joined (node 0 waited for it)"
    assert missing_nodes_reason({0: waited, 1: ["W agent: starting"], 2: []}, 30) == (
        " | rendezvous timed out after 30 s: node 1, node 2 never joined (node 0 waited for them)")
    assert missing_nodes_reason({0: waited, 1: waited}, 30) == " | rendezvous timed out after 30 s: no node saw all 2 nodes join"
    assert missing_nodes_reason({0: ["ValueError: bad"], 1: None}, 30) == ""


def test_attach_follows_a_background_run_until_it_ends_then_reports_it(vlp_home):
    import io
    import subprocess
    import sys

    from vlp.pipelines.local_run import DetachedRun, _write_detached, follow_detached
    from vlp.platform.launch.ownership import process_start_time
    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking.local_store import prepare_tracking_store
    from vlp.platform.tracking.runs import finish_run, start_run

    tracking_uri = default_tracking_uri()
    prepare_tracking_store(tracking_uri)
    run_id = start_run("attached", "attached-1", {"vlp.run_key": "k" * 32}, {}, tracking_uri)
    log = vlp_home / "background.log"
    finish_run(run_id, "FINISHED", tracking_uri)  # what the background run will have done by its end
    # Stands in for the background `vlp run`: writes its log for a while, then exits.
    script = f"import time\nfor i in range(3):\n    open({str(log)!r}, 'a').write(f'step {{i}}\\n'); time.sleep(0.2)\n"
    log.write_text("")
    background = subprocess.Popen([sys.executable, "-c", script])
    _write_detached(DetachedRun(run_key="k" * 32, pid=background.pid, started=process_start_time(background.pid) or 0, log=str(log), host="here"))
    out = io.StringIO()
    experiment, outcome = follow_detached(run_id, out=out, poll=0.05)
    background.wait(30)
    assert out.getvalue() == "step 0\nstep 1\nstep 2\n"
    assert (experiment, outcome.run_id, outcome.status) == ("attached", run_id, "FINISHED")


def test_attach_to_a_run_that_was_not_detached_is_one_line_exit_2(vlp_home):
    from vlp.pipelines.local_run import follow_detached
    from vlp.platform.errors import VlpUserError
    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking.local_store import prepare_tracking_store
    from vlp.platform.tracking.runs import start_run

    prepare_tracking_store(default_tracking_uri())
    run_id = start_run("plain", "plain-1", {"vlp.run_key": "p" * 32}, {}, default_tracking_uri())
    with pytest.raises(VlpUserError, match=rf"runs attach {run_id}: the run was not started with `vlp run --detach` on this machine; it is RUNNING"):
        follow_detached(run_id)
