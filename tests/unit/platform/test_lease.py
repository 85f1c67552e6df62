"""The run lease on local disk and on S3 (a moto server on 127.0.0.1, whose conditional PUTs are S3's): one holder
at a time, a live holder named in the refusal, expired and dead holders taken over (and named), renewals that
notice a takeover, and concurrent contenders of which exactly one wins."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from vlp.platform.storage.lease import LeaseHeldError, LeaseLostError, LeaseRecord, RunLease, _encode
from vlp.platform.storage.local import LocalStorage


@pytest.fixture(params=["local", "s3"])
def lease_uri(request, tmp_path, monkeypatch) -> str:
    if request.param == "local":
        yield str(tmp_path / "runs" / "r1" / "leases" / "training.json")
        return
    s3_server, bucket = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket")
    from services import TEST_CREDENTIALS

    for name, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    from vlp.platform.storage import _s3

    _s3.cache_clear()
    yield f"s3://{bucket}/lease-tests/{uuid.uuid4().hex}/training.json"
    _s3.cache_clear()


def plant(uri: str, record: LeaseRecord) -> None:
    """A lease written by someone else (another machine, a process that is gone)."""
    from vlp.platform.storage import open_storage

    open_storage(uri).write_bytes(uri, _encode(record))


def elsewhere(heartbeat: float, ttl: float = 30.0) -> LeaseRecord:
    return LeaseRecord(token="other-job", host="node-7", pid=4242, started=1, heartbeat=heartbeat, ttl=ttl, pod="train-pod-0")


def test_the_first_holder_wins_and_a_second_is_refused_naming_the_holder(lease_uri):
    first = RunLease(lease_uri, "job-a", ttl=30)
    assert first.acquire() is None
    with pytest.raises(LeaseHeldError) as refused:
        RunLease(lease_uri, "job-b", ttl=30).acquire()
    message = str(refused.value)
    assert f"host {socket.gethostname()} pid {os.getpid()}" in message and "last heartbeat 0 s ago" in message
    # The same job (another rank's restart) takes its own lease back.
    assert RunLease(lease_uri, "job-a", ttl=30).acquire() is None


def test_a_live_lease_elsewhere_is_refused_with_host_pod_and_heartbeat(lease_uri):
    plant(lease_uri, elsewhere(time.time() - 5))
    with pytest.raises(LeaseHeldError, match=r"host node-7 pid 4242 \(pod train-pod-0\), last heartbeat [56] s ago \(20\d\d-"):
        RunLease(lease_uri, "mine").acquire()


def test_an_expired_lease_is_taken_over_and_the_takeover_names_the_old_holder(lease_uri):
    plant(lease_uri, elsewhere(time.time() - 31))
    lease = RunLease(lease_uri, "mine", ttl=30)
    previous = lease.acquire()
    assert previous is not None and previous.host == "node-7"
    assert lease.holder().token == "mine" and "node-7" in lease.holder().taken_over_from


def test_a_holder_on_this_machine_that_is_gone_has_expired_at_once(lease_uri):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    pid = int(gone.stdout)
    plant(lease_uri, LeaseRecord(token="killed-job", host=socket.gethostname(), pid=pid, started=123, heartbeat=time.time(), ttl=600))
    assert RunLease(lease_uri, "mine").acquire().pid == pid


def test_a_released_lease_is_free_without_a_takeover(lease_uri):
    first = RunLease(lease_uri, "job-a", ttl=30)
    first.acquire()
    first.release()
    second = RunLease(lease_uri, "job-b", ttl=30)
    assert second.holder() is None and second.acquire() is None


def test_renewal_keeps_it_live_and_notices_a_takeover(lease_uri):
    lease = RunLease(lease_uri, "job-a", ttl=30)
    lease.acquire()
    before = lease.holder().heartbeat
    time.sleep(0.01)
    lease.renew()
    assert lease.holder().heartbeat > before
    plant(lease_uri, elsewhere(time.time()))
    with pytest.raises(LeaseLostError, match="now held by host node-7"):
        lease.renew()


def test_keep_alive_reports_a_lost_lease_once(lease_uri):
    lease = RunLease(lease_uri, "job-a", ttl=0.4)
    lease.acquire()
    lost = []
    lease.keep_alive(lost.append)
    time.sleep(0.25)
    assert lease.holder().token == "job-a" and not lost
    plant(lease_uri, elsewhere(time.time()))
    deadline = time.monotonic() + 5
    while not lost and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(lost) == 1 and isinstance(lost[0], LeaseLostError)
    lease.release()  # not ours any more: left alone
    assert RunLease(lease_uri, "x").holder().token == "other-job"


def test_contenders_at_once_exactly_one_wins(lease_uri):
    plant(lease_uri, elsewhere(time.time() - 60))  # expired: every contender tries the takeover at once
    outcomes: dict[str, str] = {}
    start = threading.Barrier(6)

    def contend(token: str) -> None:
        start.wait()
        try:
            RunLease(lease_uri, token, ttl=30).acquire()
            outcomes[token] = "won"
        except LeaseHeldError:
            outcomes[token] = "refused"

    threads = [threading.Thread(target=contend, args=(f"job-{index}",)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes.values()) == ["refused"] * 5 + ["won"], outcomes
    winner = next(token for token, outcome in outcomes.items() if outcome == "won")
    assert RunLease(lease_uri, "x").holder().token == winner


def test_local_first_creation_is_exclusive(tmp_path):
    uri = str(tmp_path / "lease.json")
    LocalStorage().write_bytes(uri + ".other", b"")
    first = RunLease(uri, "a")
    assert first.acquire() is None
    assert first.store.create(LeaseRecord.mine("b", 30)) is None  # O_EXCL: an existing lease is never overwritten by a create
