"""An S3 endpoint on 127.0.0.1 for benchmarks: moto's server in a subprocess (as the test fixtures run it), with
throwaway credentials in this process's environment while it is up."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

BIN = Path(sys.executable).parent
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "vlp-bench", "AWS_SECRET_ACCESS_KEY": "vlp-bench", "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def loopback_s3(workdir: Path, bucket: str = "vlp-bench") -> Iterator[str]:
    """Yields `s3://bucket`; `AWS_ENDPOINT_URL` and credentials point at the loopback server until the block ends."""
    from vlp.platform.errors import VlpUserError
    from vlp.platform.launch.torchx_launcher import free_port

    moto = BIN / "moto_server"
    if not moto.exists():
        raise VlpUserError("the s3:// benchmarks need moto's server (pip install 'moto[server]', part of vlp's test extras)")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    Path(workdir).mkdir(parents=True, exist_ok=True)
    log = open(Path(workdir) / "moto.log", "ab")
    process = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, **CREDENTIALS})
    saved = {name: os.environ.get(name) for name in (*CREDENTIALS, "AWS_ENDPOINT_URL")}
    try:
        wait_for_http(endpoint + "/moto-api/", process, "moto_server")
        os.environ.update({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
        from vlp.platform.storage.s3 import make_client

        make_client().create_bucket(Bucket=bucket)
        yield f"s3://{bucket}"
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        stop_process(process)
        log.close()


def upload_directory(local_dir: Path, uri: str) -> list[str]:
    """Every file of `local_dir` under `uri/`, in name order; returns their URIs."""
    from vlp.platform.storage import join, open_storage

    uris = []
    for path in sorted(Path(local_dir).iterdir()):
        if path.is_file():
            target = join(uri, path.name)
            open_storage(target).write_bytes(target, path.read_bytes())
            uris.append(target)
    return uris


def wait_for_http(url: str, process: subprocess.Popen, name: str, timeout: float = 60.0) -> None:
    """Until `url` answers; fails if the server process exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{name} did not answer at {url} within {timeout:.0f}s")


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
