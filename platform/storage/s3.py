"""S3 storage through boto3. The endpoint comes from `AWS_ENDPOINT_URL` (boto3 reads it), credentials from the
environment or the pod's service account: never from vlp's own config. An S3 PUT is atomic by itself.

Every operation runs whole under `with_retries` (see retry.py): botocore makes a few quick attempts per
request, and vlp retries the operation with backoff until the outage budget is spent.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO, Iterator

from vlp.platform.errors import StorageError
from vlp.platform.storage.retry import with_retries
from vlp.platform.storage.uris import split_s3

MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_PART_BYTES = 8 * 1024 * 1024
MULTIPART_CONNECTIONS = 8


def multipart_config():
    """Objects from 16 MB go up (and down, with download_file) in 8 MB parts on 8 connections."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_PART_BYTES,
                          max_concurrency=MULTIPART_CONNECTIONS)


def make_client():
    import boto3
    from botocore.config import Config

    attempts = int(os.environ.get("VLP_S3_MAX_ATTEMPTS", "3"))
    config = Config(
        retries={"max_attempts": attempts, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        s3={"addressing_style": "path"},
    )
    return boto3.session.Session().client("s3", config=config)


class S3Storage:
    def __init__(self, client=None, retry_seconds: float | None = None):
        self._client = client
        self._retry_seconds = retry_seconds

    @property
    def client(self):
        if self._client is None:
            self._client = make_client()
        return self._client

    def read_bytes(self, uri: str) -> bytes:
        bucket, key = split_s3(uri)

        def read() -> bytes:
            # The body is streamed: a connection dropped mid-read fails here and the whole GET is retried.
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

        try:
            return with_retries(read, f"read {uri}", self._retry_seconds)
        except self.client.exceptions.NoSuchKey:
            raise StorageError(f"{uri}: no such object") from None

    def write_bytes(self, uri: str, data: bytes) -> None:
        bucket, key = split_s3(uri)
        if len(data) < MULTIPART_THRESHOLD:
            def send() -> None:
                self.client.put_object(Bucket=bucket, Key=key, Body=data)
        else:
            # A checkpoint: parts on parallel connections. Like one PUT, the object appears only when the upload
            # completes; a failed upload is aborted by boto3 and the whole write retried.
            def send() -> None:
                self.client.upload_fileobj(io.BytesIO(data), bucket, key, Config=multipart_config())
        with_retries(send, f"write {uri}", self._retry_seconds)

    def open_read(self, uri: str) -> BinaryIO:
        return io.BytesIO(self.read_bytes(uri))

    def upload_file(self, local_path: Path, uri: str) -> None:
        bucket, key = split_s3(uri)
        with_retries(lambda: self.client.upload_file(str(local_path), bucket, key, Config=multipart_config()), f"upload {uri}", self._retry_seconds)

    def download_file(self, uri: str, local_path: Path) -> None:
        bucket, key = split_s3(uri)
        Path(local_path).parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(f"{local_path}.part")
        with_retries(lambda: self.client.download_file(bucket, key, str(temporary)), f"download {uri}", self._retry_seconds)
        os.replace(temporary, local_path)

    def exists(self, uri: str) -> bool:
        from botocore.exceptions import ClientError

        bucket, key = split_s3(uri)

        def head() -> bool:
            try:
                self.client.head_object(Bucket=bucket, Key=key)
                return True
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise

        return with_retries(head, f"check {uri}", self._retry_seconds)

    def list(self, prefix_uri: str) -> Iterator[str]:
        bucket, prefix = split_s3(prefix_uri)

        def list_all() -> list[str]:
            paginator = self.client.get_paginator("list_objects_v2")
            return [item["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for item in page.get("Contents", [])]

        for key in sorted(with_retries(list_all, f"list {prefix_uri}", self._retry_seconds)):
            yield f"s3://{bucket}/{key}"

    def delete(self, uri: str) -> None:
        bucket, key = split_s3(uri)
        with_retries(lambda: self.client.delete_object(Bucket=bucket, Key=key), f"delete {uri}", self._retry_seconds)
