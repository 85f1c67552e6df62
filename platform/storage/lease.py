"""A heartbeat lease in storage: at most one holder of a run's training (or of its resumption) at a time.

The lease is one small JSON object beside the run. Its holder rewrites it every `ttl / 4` seconds; a lease whose
heartbeat is older than its `ttl`, or whose holder was a process of this machine that is gone, has expired and
may be taken over (the new record names the holder it replaced). Every change is a compare-and-set, so two
contenders never both win:
- on S3, conditional writes: `PutObject` with `If-None-Match: *` to create, `If-Match: <etag>` to replace;
- on local disk, the read-check-write runs under an `fcntl` lock beside the object, and the first record is
  created whole or not at all (written aside, then hard-linked into place, which fails if the lease exists).

Holders are identified by a token: every rank and every restart of one training job shares it (the launcher
sets `VLP_JOB_TOKEN`), so a worker that torchrun restarts takes its own lease back instead of being refused.
Heartbeat times come from the holder's clock; machines that share a run should keep their clocks in sync.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from vlp.platform.launch.ownership import is_alive, process_start_time
from vlp.platform.storage.uris import is_s3, split_s3

log = logging.getLogger(__name__)

TTL_ENV = "VLP_LEASE_TTL_SECONDS"
JOB_TOKEN_ENV = "VLP_JOB_TOKEN"
DEFAULT_TTL_SECONDS = 60.0


def default_ttl() -> float:
    return float(os.environ.get(TTL_ENV) or DEFAULT_TTL_SECONDS)


@dataclass(frozen=True)
class LeaseRecord:
    token: str
    host: str
    pid: int
    started: int
    """The holder process's start time (see ownership.process_start_time): tells a recycled pid apart."""
    heartbeat: float
    ttl: float
    released: bool = False
    pod: str = ""
    taken_over_from: str = ""

    @classmethod
    def mine(cls, token: str, ttl: float, taken_over_from: str = "") -> "LeaseRecord":
        pid = os.getpid()
        return cls(token=token, host=socket.gethostname(), pid=pid, started=process_start_time(pid) or 0, heartbeat=time.time(),
                   ttl=ttl, pod=os.environ.get("VLP_POD_NAME", ""), taken_over_from=taken_over_from)

    def live(self, now: float | None = None) -> bool:
        if self.released or (now or time.time()) - self.heartbeat >= self.ttl:
            return False
        # A holder on this machine whose process is gone cannot beat again: no need to wait out its ttl.
        return self.host != socket.gethostname() or is_alive(self.pid, self.started)

    def describe(self) -> str:
        """`host H pid P (pod X), last heartbeat 3 s ago (2026-…Z)`"""
        when = datetime.fromtimestamp(self.heartbeat, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        pod = f" (pod {self.pod})" if self.pod else ""
        return f"host {self.host} pid {self.pid}{pod}, last heartbeat {max(0.0, time.time() - self.heartbeat):.0f} s ago ({when})"


class LeaseHeldError(Exception):
    """Someone else holds a live lease."""

    def __init__(self, uri: str, holder: LeaseRecord):
        super().__init__(f"lease {uri} is held by {holder.describe()}")
        self.uri = uri
        self.holder = holder

    def __reduce__(self):  # travels between ranks with pickle
        return type(self), (self.uri, self.holder)


class LeaseLostError(Exception):
    """The lease was taken over by another holder (ours had expired, say through a long storage outage)."""


class RunLease:
    """The lease at `uri` for the holder `token`. `acquire()`, then `keep_alive()` until `release()`."""

    def __init__(self, uri: str, token: str, ttl: float | None = None):
        self.uri = uri
        self.token = token
        self.ttl = default_ttl() if ttl is None else ttl
        self.store = _S3Objects(uri) if is_s3(uri) else _LocalObjects(uri)
        self.taken_over: LeaseRecord | None = None
        self._version: str | None = None
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None

    def holder(self) -> LeaseRecord | None:
        """The live holder, whoever it is, or None."""
        record, _ = self.store.read()
        return record if record is not None and record.live() else None

    def acquire(self) -> LeaseRecord | None:
        """Take the lease; returns the expired holder it took over from (None if the lease was free or ours).
        Raises LeaseHeldError while another holder's lease is live."""
        while True:
            current, version = self.store.read()
            if current is None:
                record = LeaseRecord.mine(self.token, self.ttl)
                written = self.store.create(record)
            elif current.token == self.token or not current.live():
                took_over = current.token != self.token and not current.released
                record = LeaseRecord.mine(self.token, self.ttl, current.describe() if took_over else "")
                written = self.store.replace(record, version)
            else:
                raise LeaseHeldError(self.uri, current)
            if written is not None:
                self._version = written
                self.taken_over = current if record.taken_over_from else None
                return self.taken_over
            # Someone else changed the lease between our read and write: look again.

    def renew(self) -> None:
        version = self._version
        for _ in range(3):
            written = self.store.replace(LeaseRecord.mine(self.token, self.ttl), version)
            if written is not None:
                self._version = written
                return
            # Our last write may have landed without us seeing its answer: the lease is still ours if it names us.
            current, version = self.store.read()
            if current is None or current.token != self.token:
                raise LeaseLostError(f"lease {self.uri} is {'gone' if current is None else 'now held by ' + current.describe()}")
        raise LeaseLostError(f"lease {self.uri} keeps changing under its holder")

    def keep_alive(self, on_lost) -> None:
        """Renew every ttl/4 seconds in a daemon thread; `on_lost(error)` is called once if the lease is lost."""

        def beat() -> None:
            while not self._stop.wait(self.ttl / 4):
                try:
                    self.renew()
                except LeaseLostError as lost:
                    on_lost(lost)
                    return
                except Exception as err:  # noqa: BLE001 - a failed renewal is retried on the next beat; the ttl covers it
                    log.warning("lease %s: renewal failed, retrying: %s", self.uri, err)

        self._beater = threading.Thread(target=beat, name="vlp-lease", daemon=True)
        self._beater.start()

    def release(self) -> None:
        """Mark the lease free (if it is still ours) and stop renewing it."""
        self._stop.set()
        if self._beater is not None:
            self._beater.join(10)
        with contextlib.suppress(Exception):
            current, version = self.store.read()
            if current is not None and current.token == self.token:
                self.store.replace(replace(current, released=True, heartbeat=time.time()), version)


def wait_until_free(lease: RunLease, timeout: float | None = None, poll: float = 2.0, on_wait=None) -> None:
    """Block until nobody holds `lease` (or raise LeaseHeldError once `timeout` seconds have passed)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    announced = False
    while (holder := lease.holder()) is not None:
        if deadline is not None and time.monotonic() > deadline:
            raise LeaseHeldError(lease.uri, holder)
        if on_wait is not None and not announced:
            on_wait(holder)
            announced = True
        time.sleep(poll)


def _encode(record: LeaseRecord) -> bytes:
    return json.dumps(asdict(record), sort_keys=True).encode()


def _decode(data: bytes) -> LeaseRecord:
    return LeaseRecord(**json.loads(data))


class _S3Objects:
    """Conditional PUTs; the version is the object's ETag."""

    def __init__(self, uri: str):
        from vlp.platform.storage import open_storage

        self.bucket, self.key = split_s3(uri)
        self.client = open_storage(uri).client

    def read(self) -> tuple[LeaseRecord | None, str | None]:
        from vlp.platform.storage.retry import with_retries

        def get() -> tuple[bytes, str] | None:
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self.key)
            except self.client.exceptions.NoSuchKey:
                return None
            return response["Body"].read(), response["ETag"]

        found = with_retries(get, f"read lease s3://{self.bucket}/{self.key}")
        return (None, None) if found is None else (_decode(found[0]), found[1])

    def create(self, record: LeaseRecord) -> str | None:
        return self._put(record, IfNoneMatch="*")

    def replace(self, record: LeaseRecord, version: str | None) -> str | None:
        return self._put(record, IfMatch=version) if version else None

    def _put(self, record: LeaseRecord, **condition) -> str | None:
        from botocore.exceptions import ClientError

        from vlp.platform.storage.retry import with_retries

        def put() -> str | None:
            try:
                return self.client.put_object(Bucket=self.bucket, Key=self.key, Body=_encode(record), **condition)["ETag"]
            except ClientError as err:
                # 412: the condition failed; 409: a concurrent conditional write to the same key won. A retried PUT
                # whose first attempt did land also gets 412: the caller reads the lease again and finds itself.
                if err.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                    return None
                raise

        return with_retries(put, f"write lease s3://{self.bucket}/{self.key}")


class _LocalObjects:
    """A file, changed only under an exclusive `fcntl` lock; the version is the file's bytes."""

    def __init__(self, uri: str):
        self.path = Path(uri)

    def read(self) -> tuple[LeaseRecord | None, str | None]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, None
        return _decode(data), data.decode()

    def create(self, record: LeaseRecord) -> str | None:
        import tempfile

        from vlp.platform.storage.locks import exclusive

        data = _encode(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole beside the lease, then linked into place: linking fails if the lease exists (as O_EXCL
        # would), and a reader never sees a half-written lease.
        fd, draft = tempfile.mkstemp(prefix=".tmp-lease-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            with exclusive(str(self.path)):
                try:
                    os.link(draft, self.path)
                except FileExistsError:
                    return None
        finally:
            os.unlink(draft)
        return data.decode()

    def replace(self, record: LeaseRecord, version: str | None) -> str | None:
        from vlp.platform.storage.locks import exclusive
        from vlp.platform.storage.local import LocalStorage

        data = _encode(record)
        with exclusive(str(self.path)):
            try:
                if self.path.read_bytes().decode() != version:
                    return None
            except FileNotFoundError:
                return None
            LocalStorage().write_bytes(str(self.path), data)
        return data.decode()
