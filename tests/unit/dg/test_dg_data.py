"""DG data streams from storage into disk-backed rows (memory does not grow with the data) and takes its class and
domain from the json fields the spec names."""

from __future__ import annotations

import io
import json
import os

import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from webdataset import TarWriter

from vlp.platform.errors import VlpUserError
from vlp.platform.spec.dg import DgSection
from vlp.workloads.data.image_transforms import ImagePreprocess
from vlp.workloads.data.shapes import COLOURS, ShapesParams, generate_shapes
from vlp.workloads.dg.data import ImageRows, domains_of, load_domain_data, open_dg_source, split_for
from vlp.workloads.evaluation.transform import EvalImageTransform


def transform(size: int = 32) -> EvalImageTransform:
    return EvalImageTransform(ImagePreprocess(size=(size, size), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))


def test_image_rows_read_back_any_rows_from_the_spill_file():
    images = torch.randint(0, 256, (37, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    rows = ImageRows.of(images)
    order = torch.randperm(37, generator=torch.Generator().manual_seed(1))
    assert torch.equal(rows[order], images[order])
    assert torch.equal(rows[torch.tensor([5, 5, 0])], images[[5, 5, 0]])
    assert len(rows) == 37 and rows.nbytes == 37 * 3 * 8 * 8
    rows.append(images[0])  # appending after reading: the next read sees it
    assert torch.equal(rows[torch.tensor([37])], images[:1])
    with pytest.raises(ValueError, match=r"image 38: \(3, 9, 9\)"):
        rows.append(torch.zeros(3, 9, 9, dtype=torch.uint8))
    with pytest.raises(IndexError, match="row 38 of 38"):
        rows[torch.tensor([38])]
    rows.close()


def test_shapes_study_takes_class_and_domain_from_the_named_fields(tmp_path):
    params = ShapesParams(samples=48, seed=5, image_size=40, max_aspect_ratio=1.5, image_format="jpg", max_objects=1, shard_size=20)
    generate_shapes(params, str(tmp_path / "shapes"), processes=1)
    settings = DgSection(label_field="colour", domain_field="style")
    source = open_dg_source(settings, str(tmp_path / "shapes"))
    assert source.classnames == COLOURS and domains_of(source) == ("photo", "cartoon", "sketch", "painting")

    data = load_domain_data(source, transform(32))
    records = list(source.read())
    metas = [json.loads(sample_json) for sample_json in _jsons(tmp_path / "shapes")]
    assert data.labels.tolist() == [COLOURS.index(meta["colour"]) for meta in metas]
    assert [data.domain_names[d] for d in data.domains.tolist()] == [meta["style"] for meta in metas]
    rows = torch.arange(len(records))
    assert torch.equal(data.images[rows], torch.stack([transform(32).to_uint8(record.image) for record in records]))
    assert data.pixels(rows[:4]).shape == (4, 3, 32, 32)
    split = split_for(data, "sketch", 0.25, seed=0)
    assert set(data.domains[split.test].tolist()) == {data.domain_names.index("sketch")}


def _jsons(folder) -> list[bytes]:
    from vlp.workloads.data.shards import iter_shard, list_shards

    return [sample["json"] for shard in list_shards(str(folder)) for sample in iter_shard(shard)]


def write_shards(folder, rows: list[dict]) -> None:
    folder.mkdir()
    with TarWriter(str(folder / "part-0.tar")) as writer:
        for index, meta in enumerate(rows):
            image = io.BytesIO()
            Image.new("RGB", (24 + index % 5, 20), (index * 10 % 256, 80, 160)).save(image, format="JPEG")
            writer.write({"__key__": f"site.{meta.get('site', 'x')}/{index:05d}", "jpg": image.getvalue(), "json": meta})


def test_shards_study_reads_any_json_fields_and_finds_the_domains(tmp_path):
    rows = [{"animal": animal, "site": site} for site in ("forest", "desert", "city") for animal in ("fox", "owl") for _ in range(3)]
    rows.append({"animal": "fox"})  # no domain: left out
    write_shards(tmp_path / "camera-traps", rows)
    settings = DgSection(source="shards", root=str(tmp_path / "camera-traps"), label_field="animal", domain_field="site")
    source = open_dg_source(settings, settings.root)
    assert source.classnames == ("fox", "owl")
    assert domains_of(source) == ("city", "desert", "forest")
    data = load_domain_data(source, transform(16), domains=("desert", "forest"))
    assert len(data.labels) == 12 and data.domain_names == ("desert", "forest")
    assert data.images[torch.arange(12)].shape == (12, 3, 16, 16)

    wrong = DgSection(source="shards", root=settings.root, label_field="animal", domain_field="biome")
    with pytest.raises(VlpUserError, match="at least two domains .*check dg.label_field and dg.domain_field"):
        load_domain_data(open_dg_source(wrong, wrong.root), transform(16))


def test_spec_fields_for_the_sources():
    with pytest.raises(ValidationError, match="dg.root is required when dg.source is 'shards'"):
        DgSection(source="shards")
    with pytest.raises(ValidationError, match="apply to shards"):
        DgSection(source="domainbed", root="/data/pacs", label_field="object")
    assert DgSection(source="domainbed", root="/data/pacs").label_field == "label"


def test_loading_keeps_images_out_of_memory(tmp_path):
    generate_shapes(ShapesParams(samples=64, seed=1, image_size=64, max_objects=1, shard_size=64), str(tmp_path / "d"), processes=1)
    data = load_domain_data(open_dg_source(DgSection(), str(tmp_path / "d")), transform(64))
    # Everything decoded went to the spill file; the dataclass holds labels and domains only.
    assert os.fstat(data.images._file.fileno()).st_size == data.images.nbytes == 64 * 3 * 64 * 64
    assert not any(isinstance(value, torch.Tensor) and value.dtype == torch.uint8 for value in vars(data).values())
