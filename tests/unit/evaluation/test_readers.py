"""Every input format is read into the same records, locally and from S3 (moto)."""

from __future__ import annotations

import pytest
from colour_toy import COLOURS, DOMAINS, toy_sample, write_domainbed, write_image_folder, write_shards, write_table

from vlp.platform.errors import StorageError
from vlp.workloads.data.readers import ReaderOptions, detect_format, open_source

COLOUR_LABELS = ReaderOptions(label_field="colour", domain_field="style")


def test_shards_carry_labels_domains_captions_and_masks(tmp_path):
    source = open_source(str(write_shards(tmp_path / "wds", 12)), options=COLOUR_LABELS)
    records = list(source.read())
    assert source.format == "wds" and source.classnames == COLOURS and source.domains == DOMAINS
    assert [r.label for r in records] == [toy_sample(i)["colour"] for i in range(12)]
    assert [r.domain for r in records] == [toy_sample(i)["domain"] for i in range(12)]
    assert records[4].caption == "a green square" and records[4].image == toy_sample(4)["png"]
    assert records[4].mask == toy_sample(4)["mask"] and records[4].object_labels == ("green",)


def test_shards_without_manifest_find_classes_in_the_labels(tmp_path):
    source = open_source(str(write_shards(tmp_path / "wds", 6, manifest=False)), options=COLOUR_LABELS)
    assert source.classnames == tuple(sorted(COLOURS))


def test_shards_in_clip_benchmark_layout_use_cls_and_classnames_txt(tmp_path):
    import io
    import tarfile

    root = tmp_path / "cb"
    root.mkdir()
    (root / "classnames.txt").write_text("cat\ndog\n")
    with tarfile.open(root / "0.tar", "w") as tar:
        for key, cls in (("a", 1), ("b", 0)):
            for suffix, data in (("webp", toy_sample(0)["png"]), ("cls", str(cls).encode())):
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    source = open_source(str(root))
    assert source.classnames == ("cat", "dog")
    assert [record.label for record in source.read()] == ["dog", "cat"]


@pytest.mark.parametrize("separator", [",", "\t"])
def test_tables_read_relative_paths_captions_and_labels(tmp_path, separator):
    table = write_table(tmp_path / "table", 5, separator)
    source = open_source(str(table), options=ReaderOptions(label_column="colour"))
    records = list(source.read())
    assert source.format == "csv" and source.name == "pairs" and source.classnames == ("blue", "green", "red")
    assert [r.caption for r in records] == [toy_sample(i)["caption"] for i in range(5)]
    assert records[2].image == toy_sample(2)["png"] and records[2].label == "blue"


def test_table_with_a_missing_column_names_it(tmp_path):
    table = write_table(tmp_path / "table", 2)
    with pytest.raises(StorageError, match="no caption column 'caption'"):
        open_source(str(table), options=ReaderOptions(caption_column="caption"))


def test_image_folder_classes_are_sorted_folder_names(tmp_path):
    source = open_source(str(write_image_folder(tmp_path / "folder", 7)))
    records = list(source.read())
    assert source.format == "folder" and source.classnames == ("blue", "green", "red")
    assert sorted(r.label for r in records) == sorted(toy_sample(i)["colour"] for i in range(7))
    assert all(r.domain is None and r.caption is None for r in records)


def test_domainbed_folders_give_domain_and_class(tmp_path):
    source = open_source(str(write_domainbed(tmp_path / "db", 12)))
    records = {r.key: r for r in source.read()}
    assert source.format == "domainbed" and source.domains == DOMAINS and source.classnames == ("blue", "green", "red")
    assert records["dark/red/000003.png"].label == "red" and records["dark/red/000003.png"].domain == "dark"
    assert len(records) == 12


def test_detect_format_refuses_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(StorageError, match="no dataset found"):
        detect_format(str(tmp_path / "empty"))


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    from services import TEST_CREDENTIALS

    import vlp.platform.storage as storage

    for key, value in {**TEST_CREDENTIALS, "AWS_ENDPOINT_URL": s3_server.url}.items():
        monkeypatch.setenv(key, value)
    storage._s3.cache_clear()
    yield
    storage._s3.cache_clear()


def upload_tree(local_root, bucket: str, prefix: str) -> str:
    from vlp.platform.storage import open_storage

    for path in sorted(local_root.rglob("*")):
        if path.is_file():
            uri = f"s3://{bucket}/{prefix}/{path.relative_to(local_root).as_posix()}"
            open_storage(uri).upload_file(path, uri)
    return f"s3://{bucket}/{prefix}"


def test_domainbed_table_and_shards_read_from_s3(tmp_path, s3_bucket, s3_env):
    domainbed = upload_tree(write_domainbed(tmp_path / "db", 6), s3_bucket, "readers/db")
    source = open_source(domainbed)
    assert source.format == "domainbed" and source.name == "db" and len(list(source.read())) == 6

    write_table(tmp_path / "table", 4)
    table_root = upload_tree(tmp_path / "table", s3_bucket, "readers/table")
    table = open_source(f"{table_root}/pairs.csv")
    assert [r.image for r in table.read()] == [toy_sample(i)["png"] for i in range(4)]

    shards = upload_tree(write_shards(tmp_path / "wds", 9), s3_bucket, "readers/wds")
    records = list(open_source(shards, options=COLOUR_LABELS).read())
    assert len(records) == 9 and records[0].label == "red" and records[0].mask is not None


@pytest.fixture
def clip_benchmark_folder(tmp_path):
    from clip_benchmark_data import write_classification

    return write_classification(tmp_path / "wds_toy", 10, per_shard=4)


def test_clip_benchmark_layout_is_detected_at_its_root_and_its_split_folder(clip_benchmark_folder):
    assert detect_format(str(clip_benchmark_folder)) == "clip_benchmark"
    assert detect_format(str(clip_benchmark_folder / "test")) == "clip_benchmark"
    records = list(open_source(str(clip_benchmark_folder)).read())
    assert [r.label_index for r in records] == [i % 6 for i in range(10)] and records[7].label == "class 1"


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "classnames.txt").unlink(), "classnames.txt: missing"),
        (lambda root: (root / "test" / "nshards.txt").write_text("three\n"), "nshards.txt: expected the number of shards"),
        (lambda root: (root / "test" / "nshards.txt").write_text("4\n"), "test/3.tar: missing"),
        (lambda root: (root / "dataset_type.txt").write_text("multilabel\n"), "dataset_type.txt: dataset type 'multilabel' is not supported"),
    ],
)
def test_clip_benchmark_layout_problems_name_the_file(clip_benchmark_folder, damage, message):
    damage(clip_benchmark_folder)
    with pytest.raises(StorageError, match=message):
        open_source(str(clip_benchmark_folder))


def test_clip_benchmark_split_must_exist(clip_benchmark_folder):
    with pytest.raises(StorageError, match="train/nshards.txt: missing"):
        open_source(str(clip_benchmark_folder), "clip_benchmark", ReaderOptions(split="train"))


def test_clip_benchmark_label_outside_the_class_list_names_the_sample(clip_benchmark_folder):
    (clip_benchmark_folder / "classnames.txt").write_text("only\ntwo\n")
    with pytest.raises(StorageError, match=r"0\.tar: sample s0000002: label b'2' is not an index into the 2 class names"):
        list(open_source(str(clip_benchmark_folder)).read())
