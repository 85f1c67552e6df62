"""The fast tar walker reads what `tarfile` reads, member for member, on archives other tools wrote: `tarfile` in
USTAR, GNU and PAX formats, webdataset's `TarWriter`, and img2dataset's layouts. Samples are grouped as
webdataset groups them.

img2dataset itself is not installed: its dependencies would downgrade webdataset (1.0 -> 0.2) and pandas
(3 -> 2). Its writer is a few lines over webdataset's `TarWriter` (img2dataset/writer.py,
`WebDatasetSampleWriter.write`), reproduced here with the same keys, entries and JSON metadata.
"""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from webdataset import TarWriter
from webdataset.tariterators import group_by_keys, tar_file_iterator

from vlp.workloads.data.shards import iter_shard_bytes
from vlp.workloads.data.tar_members import iter_tar_members

FORMATS = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}


def tarfile_members(data: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        return [(member.name, archive.extractfile(member).read()) for member in archive if member.isfile()]


def webdataset_samples(data: bytes) -> list[dict]:
    files = ({**item, "__url__": "shard.tar"} for item in tar_file_iterator(io.BytesIO(data)))
    return list(group_by_keys(files))


def write_tar(entries: list[tuple[str, bytes | None]], format: int, pax_headers: dict | None = None) -> bytes:
    """`(name, content)` files, and `(name, None)` directories."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=format, pax_headers=pax_headers or {}) as archive:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def long_key(index: int, length: int) -> str:
    """A path of about `length` characters whose last `/` leaves a short basename (USTAR's prefix can hold it)."""
    folder = f"crawl.2024-{index:03d}/" + "deep_folder/" * (length // 12)
    return (folder + f"{index:09d}")[:length - 10].rstrip("/") + f"/{index:09d}"


def shard_entries(samples: int, long_from: int, length: int = 180) -> list[tuple[str, bytes | None]]:
    entries: list[tuple[str, bytes | None]] = []
    for index in range(samples):
        key = long_key(index, length) if index >= long_from else f"{index:09d}"
        entries += [(f"{key}.jpg", bytes([index % 256]) * (100 + index)), (f"{key}.txt", f"caption {index}".encode())]
    return entries


@pytest.mark.parametrize("format", FORMATS)
def test_a_shard_whose_later_keys_are_long_paths_is_read_once(format):
    # The measured bug: 100 samples, the last 50 with long keys, came back as 150.
    data = write_tar(shard_entries(100, long_from=50), FORMATS[format])
    assert list(iter_tar_members(data)) == tarfile_members(data)
    samples = list(iter_shard_bytes("shard.tar", data))
    assert len(samples) == 100
    assert [sample["__key__"] for sample in samples] == [sample["__key__"] for sample in webdataset_samples(data)]
    assert samples[-1]["jpg"] == bytes([99]) * 199


@pytest.mark.parametrize("format", FORMATS)
def test_unicode_names_directories_and_empty_members_match_tarfile(format):
    entries = [
        ("photos.v2/", None),
        ("photos.v2/été/", None),
        ("photos.v2/été/000001.jpg", b"\xff\xd8 jpeg"),
        ("photos.v2/été/000001.txt", "un chat noir — 猫".encode()),
        ("photos.v2/été/000002.jpg", b""),  # an empty member
        ("photos.v2/été/000002.txt", b""),
        ("データ/画像/000003.png", b"png"),
        ("data/%s/000004.jpg" % ("ü" * 60), b"long unicode folder"),
    ]
    if format == "ustar":
        entries.pop()  # 60 two-byte characters do not fit USTAR's 155-byte prefix
    data = write_tar(entries, FORMATS[format])
    members = list(iter_tar_members(data))
    assert members == tarfile_members(data)
    assert ("photos.v2/été/000002.jpg", b"") in members and not any(name.endswith("/") for name, _ in members)


def test_ustar_prefix_field_is_joined_to_the_name():
    name = "a" * 120 + "/" + "b" * 90 + ".jpg"
    data = write_tar([(name, b"x")], tarfile.USTAR_FORMAT)
    assert data[345:465] == b"a" * 120  # tarfile really wrote the prefix field
    assert list(iter_tar_members(data)) == [(name, b"x")] == tarfile_members(data)


def test_names_over_255_bytes_need_pax_or_gnu_headers():
    name = "x/" * 200 + "sample.jpg"
    for format in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        data = write_tar([("first.jpg", b"1"), (name, b"2"), ("last.jpg", b"3")], format)
        assert list(iter_tar_members(data)) == tarfile_members(data) == [("first.jpg", b"1"), (name, b"2"), ("last.jpg", b"3")]


def test_pax_global_headers_and_size_records():
    # A global header first (tarfile writes one for `pax_headers`); then a member whose pax header carries its size.
    data = write_tar([("a.txt", b"a" * 700), ("b.txt", b"b")], tarfile.PAX_FORMAT, pax_headers={"comment": "made by a test"})
    assert data[156:157] == b"g"
    assert list(iter_tar_members(data)) == tarfile_members(data)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("sized.bin")
        info.size = 600
        info.pax_headers = {"size": "600", "path": "renamed/by/pax.bin"}
        archive.addfile(info, io.BytesIO(b"s" * 600))
    data = buffer.getvalue()
    assert list(iter_tar_members(data)) == tarfile_members(data) == [("renamed/by/pax.bin", b"s" * 600)]


def test_gnu_base256_size_field():
    data = bytearray(write_tar([("big.bin", b"z" * 1000), ("next.txt", b"n")], tarfile.GNU_FORMAT))
    data[124:136] = b"\x80" + (1000).to_bytes(11, "big")  # how GNU tar writes sizes of 8 GiB and more
    _rewrite_checksum(data, 0)
    assert list(iter_tar_members(bytes(data))) == tarfile_members(bytes(data)) == [("big.bin", b"z" * 1000), ("next.txt", b"n")]


def test_webdataset_tarwriter_shards_with_long_keys():
    buffer = io.BytesIO()
    with TarWriter(buffer) as writer:
        for index in range(30):
            key = long_key(index, 150) if index % 3 == 0 else f"sample{index:04d}"
            writer.write({"__key__": key, "jpg": bytes([index]) * 50, "txt": f"caption {index}", "json": {"i": index}})
    data = buffer.getvalue()
    assert list(iter_tar_members(data)) == tarfile_members(data)
    ours = list(iter_shard_bytes("shard.tar", data))
    theirs = webdataset_samples(data)
    assert len(ours) == 30
    assert [{k: v for k, v in s.items() if k != "__url__"} for s in ours] == [{k: v for k, v in s.items() if k != "__url__"} for s in theirs]


def img2dataset_shard(shard_id: int, samples: int) -> bytes:
    """What img2dataset's `WebDatasetSampleWriter` writes (output_format webdataset): keys `{shard:05d}{index:04d}`,
    `jpg`, `txt` and an indented `json` of the row's metadata."""
    buffer = io.BytesIO()
    writer = TarWriter(buffer)
    for index in range(samples):
        key = f"{shard_id:05d}{index:04d}"
        meta = {"url": f"file:///photos/img {index}.jpg", "key": key, "status": "success", "error_message": None,
                "width": 256 + index, "height": 384, "original_width": 1024, "original_height": 1536, "caption": f"photo {index}"}
        writer.write({"__key__": key, "jpg": b"\xff\xd8" + bytes([index]) * 40, "txt": f"photo {index}", "json": json.dumps(meta, indent=4)})
    writer.close()
    return buffer.getvalue()


def test_img2dataset_webdataset_output():
    data = img2dataset_shard(3, 25)
    samples = list(iter_shard_bytes("00003.tar", data))
    assert [s["__key__"] for s in samples] == [f"0000300{i:02d}" for i in range(25)]
    assert json.loads(samples[7]["json"])["width"] == 263 and samples[7]["txt"] == b"photo 7"
    assert list(iter_tar_members(data)) == tarfile_members(data)


@pytest.mark.parametrize("format", FORMATS)
def test_img2dataset_files_output_tarred_with_dots_in_folder_names(format):
    # img2dataset's `files` output (`00000/000000001.jpg`, `.txt`, `.json`), tarred as a folder would be, under a
    # dataset folder with dots in its name: the key keeps every folder and stops at the basename's first dot.
    entries: list[tuple[str, bytes | None]] = [("laion.2b-en.v1/", None), ("laion.2b-en.v1/00000/", None)]
    for index in range(1, 6):
        stem = f"laion.2b-en.v1/00000/{index:09d}"
        entries += [(f"{stem}.jpg", b"img%d" % index), (f"{stem}.txt", b"cap"), (f"{stem}.json", b"{}")]
    entries.append(("laion.2b-en.v1/00000/000000005.extra.Seg.PNG", b"mask"))
    entries.append(("__index__", b"webdataset meta"))
    data = write_tar(entries, FORMATS[format])
    assert list(iter_tar_members(data)) == tarfile_members(data)
    ours = list(iter_shard_bytes("00000.tar", data))
    assert [s["__key__"] for s in ours] == [f"laion.2b-en.v1/00000/{i:09d}" for i in range(1, 6)]
    assert ours[-1]["extra.seg.png"] == b"mask"
    assert [{k: v for k, v in s.items() if k != "__url__"} for s in ours] == [
        {k: v for k, v in s.items() if k != "__url__"} for s in webdataset_samples(data)
    ]


def test_gnu_sparse_members_are_left_to_tarfile_without_rereading_earlier_ones():
    data = bytearray(write_tar([("one.txt", b"1"), ("two.txt", b"2"), ("holes.bin", b"h" * 512), ("three.txt", b"3")], tarfile.GNU_FORMAT))
    sparse_header = 2 * 1024  # each earlier member takes a header and one data block
    data[sparse_header + 156 : sparse_header + 157] = b"S"
    data[sparse_header + 386 : sparse_header + 410] = b"%011o\0%011o\0" % (1024, 512)  # 512 bytes of data at offset 1024
    data[sparse_header + 483 : sparse_header + 495] = b"%011o\0" % 1536  # real size
    _rewrite_checksum(data, sparse_header)
    expected = tarfile_members(bytes(data))
    assert [name for name, _ in expected] == ["one.txt", "two.txt", "holes.bin", "three.txt"]
    assert list(iter_tar_members(bytes(data))) == expected


@pytest.mark.parametrize("cut", ["inside a member", "on a block boundary", "inside a pax header"])
def test_cut_short_archives_raise(cut):
    data = write_tar(shard_entries(4, long_from=2, length=300), tarfile.PAX_FORMAT)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        last = archive.getmembers()[-1]
    after_last_member = last.offset_data + (last.size + 511) // 512 * 512  # the end-of-archive blocks are gone
    ends = {"inside a member": 512 + 50, "on a block boundary": after_last_member, "inside a pax header": None}
    if cut == "inside a pax header":
        first_pax = next(offset for offset in range(0, len(data), 512) if data[offset + 156 : offset + 157] == b"x")
        ends[cut] = first_pax + 512 + 20
    with pytest.raises(tarfile.ReadError, match="truncated archive"):
        list(iter_tar_members(data[: ends[cut]]))


def test_a_damaged_header_raises_instead_of_ending_the_shard_early():
    data = bytearray(write_tar(shard_entries(3, long_from=3), tarfile.USTAR_FORMAT))
    data[1024 + 10] ^= 0xFF  # the second member's name; its checksum no longer matches
    with pytest.raises(tarfile.ReadError, match="bad header checksum at byte 1024"):
        list(iter_tar_members(bytes(data)))


def test_repeated_entry_of_one_sample_is_an_error():
    data = write_tar([("a/1.jpg", b"x"), ("a/1.jpg", b"y")], tarfile.USTAR_FORMAT)
    with pytest.raises(ValueError, match="repeats entry 'jpg' of sample 'a/1'"):
        list(iter_shard_bytes("s.tar", data))


def _rewrite_checksum(data: bytearray, offset: int) -> None:
    header = data[offset : offset + 512]
    header[148:156] = b" " * 8
    data[offset + 148 : offset + 156] = b"%06o\0 " % sum(header)
