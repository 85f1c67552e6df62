from __future__ import annotations

import os

import pytest

from vlp.platform.errors import StorageError
from vlp.platform.storage import join, open_storage
from vlp.platform.storage.uris import split_s3


def test_local_round_trip_list_and_delete(tmp_path):
    storage = open_storage(str(tmp_path))
    a, b = join(str(tmp_path), "x", "a.bin"), join(str(tmp_path), "x", "b.bin")
    storage.write_bytes(a, b"alpha")
    storage.write_bytes(b, b"beta")
    assert storage.read_bytes(a) == b"alpha"
    assert list(storage.list(str(tmp_path / "x") + "/")) == [a, b]
    storage.delete(a)
    assert not storage.exists(a) and storage.exists(b)


def test_failed_local_write_leaves_nothing(tmp_path):
    storage = open_storage(str(tmp_path))
    target = join(str(tmp_path), "obj")

    class Boom(Exception):
        pass

    def exploding(handle):
        handle.write(b"partial")
        raise Boom

    with pytest.raises(Boom):
        storage._atomic_write(tmp_path / "obj", exploding)
    assert not storage.exists(target)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("segment", ["..", "a/../b", "", "x\\y"])
def test_join_rejects_escaping_segments(segment):
    with pytest.raises(StorageError):
        join("s3://bucket/root", segment) if segment else join("s3://bucket/root", "a//b")


def test_split_s3():
    assert split_s3("s3://bucket/a/b") == ("bucket", "a/b")
    with pytest.raises(StorageError, match="missing bucket"):
        split_s3("s3:///key")


def test_missing_local_object_is_a_user_error(tmp_path):
    with pytest.raises(StorageError, match="no such file"):
        open_storage(str(tmp_path)).read_bytes(str(tmp_path / "missing"))


def test_s3_round_trip_against_moto_server(s3_server, s3_bucket, monkeypatch):
    from services import TEST_CREDENTIALS

    from vlp.platform.storage.s3 import S3Storage

    for key, value in {**TEST_CREDENTIALS, "AWS_ENDPOINT_URL": s3_server.url}.items():
        monkeypatch.setenv(key, value)
    storage = S3Storage()
    base = f"s3://{s3_bucket}/unit-storage"
    storage.write_bytes(join(base, "one.txt"), b"1")
    storage.write_bytes(join(base, "two.txt"), b"22")
    assert storage.read_bytes(join(base, "two.txt")) == b"22"
    assert list(storage.list(base + "/")) == [join(base, "one.txt"), join(base, "two.txt")]
    assert storage.exists(join(base, "one.txt")) and not storage.exists(join(base, "three.txt"))
    with pytest.raises(StorageError, match="no such object"):
        storage.read_bytes(join(base, "three.txt"))


def test_a_checkpoint_sized_s3_write_goes_up_in_parts_and_reads_back_whole(s3_server, s3_bucket, monkeypatch):
    from services import TEST_CREDENTIALS

    from vlp.platform.storage.s3 import MULTIPART_PART_BYTES, MULTIPART_THRESHOLD, S3Storage

    for key, value in {**TEST_CREDENTIALS, "AWS_ENDPOINT_URL": s3_server.url}.items():
        monkeypatch.setenv(key, value)
    storage = S3Storage()
    payload = os.urandom(MULTIPART_THRESHOLD + 1)
    uri = f"s3://{s3_bucket}/unit-storage/checkpoint.pt"
    storage.write_bytes(uri, payload)
    assert storage.read_bytes(uri) == payload
    # A multipart object's ETag ends in "-<number of parts>".
    etag = storage.client.head_object(Bucket=s3_bucket, Key="unit-storage/checkpoint.pt")["ETag"].strip('"')
    assert etag.endswith(f"-{-(-len(payload) // MULTIPART_PART_BYTES)}")
