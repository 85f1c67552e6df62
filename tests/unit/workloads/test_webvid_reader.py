"""Video-caption datasets for evaluation: vlp's clip shards, video2dataset-style shards, WebVid and path/caption tables."""

from __future__ import annotations

import csv
import io
import json
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest

from vlp.platform.errors import StorageError
from vlp.workloads.data.readers import ReaderOptions, open_source
from vlp.workloads.data.readers.webvid import VideoRecord, VideoSource, open_video_source
from vlp.workloads.data.shapes_video import MOTIONS, VideoShapesParams, generate_shapes_video, render_clip
from vlp.workloads.data.shapes_render import SHAPES
from vlp.workloads.data.video_codec import decode_video, encode_video

WEBVID_HEADER = ["videoid", "contentUrl", "duration", "page_dir", "name"]  # results_10M_train.csv


def _clip(level: int) -> bytes:
    return encode_video(np.full((4, 16, 16, 3), level, np.uint8), fps=4)


def test_generated_clip_shards_give_motion_and_shape_apart(tmp_path):
    params = VideoShapesParams(samples=10, seed=2, frames=4, shard_size=4)
    generate_shapes_video(params, str(tmp_path), processes=1)
    source = open_source(str(tmp_path), "video", ReaderOptions(label_field="motion"))
    assert isinstance(source, VideoSource) and source.format == "video"
    assert source.classnames == source.motions == MOTIONS and source.shapes == SHAPES
    assert source.domains == ("photo", "cartoon", "sketch", "painting")
    records = list(source.read())
    assert [r.key for r in records] == [f"{i:08d}" for i in range(10)]
    for record in records:
        clip = render_clip(params, int(record.key))
        assert record.video == clip["mp4"] and record.caption == clip["txt"] and record.extension == "mp4"
        meta = clip["json"]
        assert (record.label, record.motion, record.shape, record.domain) == (meta["motion"], meta["motion"], meta["shape"], meta["style"])
        assert record.meta == meta
    assert decode_video(records[0].video).shape == (4, 3, 32, 32)
    # The appearance classes as the label, for the image-style zero-shot.
    by_shape = open_source(str(tmp_path), "video", ReaderOptions(label_field="shape"))
    assert by_shape.classnames == SHAPES and [r.label for r in by_shape.read()] == [r.shape for r in records]


def _write_shard(path: Path, samples: list[dict]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for sample in samples:
            for entry, content in sample.items():
                if entry == "__key__":
                    continue
                member = tarfile.TarInfo(f"{sample['__key__']}.{entry}")
                member.size = len(content)
                archive.addfile(member, io.BytesIO(content))
    path.write_bytes(buffer.getvalue())


def test_video2dataset_style_shards_without_a_manifest(tmp_path):
    # video2dataset writes <key>.mp4, <key>.txt and <key>.json (its own fields: url, key, status, ...).
    _write_shard(tmp_path / "00000.tar", [
        {"__key__": f"00000000{i}", "mp4": _clip(40 * i), "txt": f"clip {i}".encode(),
         "json": json.dumps({"url": f"https://example.invalid/{i}.mp4", "key": f"00000000{i}", "status": "success"}).encode()}
        for i in range(3)
    ])
    source = open_video_source(str(tmp_path))
    assert source.classnames == () and source.motions == () and source.shapes == ()
    records = list(source.read())
    assert [(r.caption, r.label, r.motion) for r in records] == [("clip 0", None, None), ("clip 1", None, None), ("clip 2", None, None)]
    assert records[2].meta["status"] == "success"
    _write_shard(tmp_path / "00001.tar", [{"__key__": "x", "txt": b"no video here"}])
    with pytest.raises(StorageError, match="sample x has no video"):
        list(open_video_source(str(tmp_path)).read())


def test_a_webvid_table_finds_the_downloaded_videos_and_skips_missing_ones(tmp_path, caplog):
    rows = [
        {"videoid": "1066674784", "contentUrl": "https://ak.picdn.net/a.mp4", "duration": "PT00H00M21S",
         "page_dir": "1066651177", "name": "Aerial shot winter forest"},
        {"videoid": "1021567417", "contentUrl": "https://ak.picdn.net/b.mp4", "duration": "PT00H00M12S",
         "page_dir": "1021563727", "name": "Woman, doctor, talking"},
        {"videoid": "4", "contentUrl": "https://ak.picdn.net/c.mp4", "duration": "PT00H00M05S",
         "page_dir": "9", "name": "Never downloaded"},
    ]
    for level, row in enumerate(rows[:2]):
        path = tmp_path / "videos" / row["page_dir"] / f"{row['videoid']}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_clip(60 * level))
    with open(tmp_path / "results_2M_val.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, WEBVID_HEADER)
        writer.writeheader()
        writer.writerows(rows)
    source = open_source(str(tmp_path / "results_2M_val.csv"), "video")
    with caplog.at_level(logging.WARNING):
        records = list(source.read())
    assert [(r.key, r.caption) for r in records] == [("1066674784", "Aerial shot winter forest"), ("1021567417", "Woman, doctor, talking")]
    assert records[0].video == (tmp_path / "videos/1066651177/1066674784.mp4").read_bytes()
    assert records[1].meta["duration"] == "PT00H00M12S"
    assert any("1 of 3 listed videos are missing" in r.getMessage() and "9/4.mp4" in r.getMessage() for r in caplog.records)
    with pytest.raises(StorageError, match="none of the first 3 WebVid videos found.*videos/1066651177/1066674784.mp4"):
        open_video_source(str(tmp_path / "results_2M_val.csv"), video_root=str(tmp_path / "elsewhere"))


def test_a_path_caption_table_with_labels(tmp_path):
    (tmp_path / "clips").mkdir()
    for name, level in (("a.mp4", 10), ("b.webm", 200)):
        (tmp_path / "clips" / name).write_bytes(_clip(level))
    (tmp_path / "clips.tsv").write_text("path\tcaption\tmotion\nclips/a.mp4\ta dot moving left\tmoving left\n"
                                        f"{tmp_path}/clips/b.webm\ta dot growing\tgrowing\n")
    source = open_source(str(tmp_path / "clips.tsv"), "video", ReaderOptions(label_column="motion"))
    assert source.classnames == ("growing", "moving left")
    records = list(source.read())
    assert [(r.key, r.caption, r.label, r.extension) for r in records] == [
        ("clips/a.mp4", "a dot moving left", "moving left", "mp4"), (f"{tmp_path}/clips/b.webm", "a dot growing", "growing", "webm")]
    assert isinstance(records[0], VideoRecord)


def test_a_table_without_video_or_caption_columns_is_refused_by_name(tmp_path):
    (tmp_path / "t.csv").write_text("url,text\nx,y\n")
    with pytest.raises(StorageError, match=r"t.csv: no video column: need WebVid's videoid,page_dir,name or a path column .*\(columns: url, text\)"):
        open_video_source(str(tmp_path / "t.csv"))
    (tmp_path / "u.csv").write_text("path,label\nx.mp4,y\n")
    with pytest.raises(StorageError, match=r"u.csv: no caption column"):
        open_video_source(str(tmp_path / "u.csv"))
    with pytest.raises(StorageError, match="u.csv: no label column 'motion'"):
        open_video_source(str(tmp_path / "u.csv"), caption_column="label", label_column="motion")


def test_auto_detection_tells_video_shards_from_image_shards(tmp_path):
    from vlp.workloads.data.readers import detect_format
    from vlp.workloads.data.shapes import ShapesParams, generate_shapes

    generate_shapes_video(VideoShapesParams(samples=3, seed=0, frames=3), str(tmp_path / "clips"), processes=1)
    generate_shapes(ShapesParams(samples=3, seed=0), str(tmp_path / "images"), processes=1)
    (tmp_path / "wild").mkdir()
    _write_shard(tmp_path / "wild" / "00000.tar", [{"__key__": "a", "json": b"{}", "mp4": _clip(9), "txt": b"a clip"}])
    (tmp_path / "wild-images").mkdir()
    _write_shard(tmp_path / "wild-images" / "00000.tar", [{"__key__": "a", "jpg": b"x", "txt": b"y"}, {"__key__": "b", "mp4": b"z"}])
    assert detect_format(str(tmp_path / "clips")) == "video"  # from the manifest
    assert detect_format(str(tmp_path / "wild")) == "video"  # from the first sample (video2dataset: no manifest)
    assert detect_format(str(tmp_path / "images")) == "wds"
    assert detect_format(str(tmp_path / "wild-images")) == "wds"  # only the first sample counts
    assert isinstance(open_source(str(tmp_path / "clips")), VideoSource)
