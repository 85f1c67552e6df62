"""A local job's processes notice that their owner is gone: by the watchdog (pid plus start time, so a recycled
pid does not count as the owner) and by the kernel's parent-death signal."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from vlp.platform.launch import ownership


def test_owners_list_names_each_process_once_with_its_start_time():
    me = ownership.owner_entry(os.getpid())
    assert me == f"{os.getpid()}:{ownership.process_start_time(os.getpid())}"
    chained = ownership.owners_with(os.getpid(), "1:5")
    assert chained == f"1:5,{me}" and ownership.owners_with(os.getpid(), chained) == chained
    assert ownership.parse_owners(chained) == [(1, 5), (os.getpid(), ownership.process_start_time(os.getpid()))]


def test_a_recycled_pid_is_not_the_owner():
    assert ownership.gone_owner([(os.getpid(), ownership.process_start_time(os.getpid()))]) is None
    assert ownership.gone_owner([(os.getpid(), 1)]) == os.getpid()


def test_the_watchdog_reports_the_owner_that_exits():
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        seen = threading.Event()
        gone = []
        ownership.watch_owners(lambda pid: (gone.append(pid), seen.set()), [(os.getpid(), 0), (owner.pid, ownership.process_start_time(owner.pid))],
                               interval=0.05)
        time.sleep(0.2)
        assert not seen.is_set()
        owner.kill()
        owner.wait()
        assert seen.wait(5) and gone == [owner.pid]
    finally:
        owner.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_child_that_asked_for_the_parent_death_signal_dies_with_its_parent(tmp_path):
    # parent -> child (asks for SIGTERM when its parent dies, then sleeps); the parent is SIGKILLed.
    child = textwrap.dedent("""
        import sys, time
        from vlp.platform.launch.ownership import die_with_parent
        assert die_with_parent()
        print("ready", flush=True)
        time.sleep(60)
    """)
    parent = textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {child!r}], stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert child.stdout.readline().strip() == "ready"
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    child_pid = int(process.stdout.readline())
    process.kill()
    process.wait()
    deadline = time.monotonic() + 5
    while ownership.process_start_time(child_pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ownership.process_start_time(child_pid) is None, "the child outlived its parent"
