"""vlp's evaluation against CLIP_benchmark's own code: its converter writes the data, its reader reads it beside
vlp's, its metric functions score the same model and embeddings, and its table builder reads vlp's JSON."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F
from clip_benchmark_data import CLASSES, TEMPLATES, captions_of, clip_benchmark_cli, decoded, write_classification, write_retrieval

from vlp.platform.spec.evaluation import EvalSection
from vlp.workloads.data.readers import open_source
from vlp.workloads.evaluation.encode import image_transform
from vlp.workloads.evaluation.publish import result_filename, write_results
from vlp.workloads.evaluation.retrieval import retrieval_metrics
from vlp.workloads.evaluation.suite import run_suite
from vlp.workloads.evaluation.zeroshot import classification_metrics

pytestmark = pytest.mark.usefixtures("one_thread")

ONLY = {task: False for task in ("zeroshot", "retrieval", "linear_probe", "segmentation", "modality_gap", "per_domain")}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip-benchmark")
    return {
        "classification": write_classification(root / "wds_toy-classes", 30),
        "retrieval": write_retrieval(root / "wds_toy-captions", 12),
    }


@pytest.fixture(autouse=True)
def clip_benchmark_on_this_numpy(monkeypatch):
    """CLIP_benchmark's `accuracy` ends in `float(array of shape (1,))`, which numpy 2.x refuses; a module-level
    `float` that takes the one element keeps the rest of its code as it is."""
    import builtins

    import numpy as np
    from clip_benchmark.metrics import zeroshot_classification

    monkeypatch.setattr(zeroshot_classification, "float", lambda value: builtins.float(np.asarray(value).reshape(-1)[0]) if np.ndim(value) else builtins.float(value), raising=False)


@pytest.fixture(scope="module")
def tiny_model():
    from vlp.workloads.models.catalog import load_model_cfg
    from vlp.workloads.models.factory import build_model_from_cfg

    torch.manual_seed(0)
    built = build_model_from_cfg(load_model_cfg("shapes-rn-tiny"))
    built.model.eval()
    return built


def clip_benchmark_reading(root):
    from clip_benchmark.datasets.builder import build_wds_dataset

    return build_wds_dataset("wds/toy", transform=lambda image: image, split="test", data_dir=str(root))


def test_vlp_reads_what_clip_benchmark_reads(datasets):
    import numpy as np

    for kind, root in datasets.items():
        source = open_source(str(root))
        records = list(source.read())
        theirs = clip_benchmark_reading(root)
        expected = [(np.asarray(image.convert("RGB")), target) for image, target in theirs]
        assert source.format == "clip_benchmark" and len(records) == len(expected) > 0
        for record, (pixels, target) in zip(records, expected):
            assert np.array_equal(decoded(record.image), pixels)
            if kind == "retrieval":
                assert list(record.all_captions) == target
            else:
                assert record.label_index == target and record.label == theirs.classes[target]
        if kind == "classification":
            assert source.classnames == tuple(theirs.classes) == CLASSES and source.templates == tuple(theirs.templates) == TEMPLATES
            assert source.name == "wds/toy-classes"


def test_split_folder_reads_the_same_as_the_root(datasets):
    root = datasets["classification"]
    by_root, by_split = open_source(str(root)), open_source(str(root / "test"))
    assert by_split.classnames == by_root.classnames and by_split.name == by_root.name
    assert [r.key for r in by_split.read()] == [r.key for r in by_root.read()]


class Labelled(list):
    """(image, label) pairs with the `classes` CLIP_benchmark's zero-shot reads to decide whether acc5 is defined."""

    def __init__(self, pairs, classes):
        super().__init__(pairs)
        self.classes = list(classes)


def test_zeroshot_classification_equals_clip_benchmarks_on_a_real_model(datasets, tiny_model):
    from clip_benchmark.metrics import zeroshot_classification

    source = open_source(str(datasets["classification"]))
    section = EvalSection(**{**ONLY, "zeroshot": True}, batch_size=8)
    ours = run_suite(tiny_model, source, section, "shapes-rn-tiny").results[0]

    records = list(source.read())
    transform = image_transform(tiny_model)
    dataset = Labelled(((transform(record.image), record.label_index) for record in records), source.classnames)
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=False)
    theirs = zeroshot_classification.evaluate(tiny_model.model, loader, tiny_model.tokenizer, list(source.classnames), list(source.templates), device="cpu", amp=False)

    assert ours["metrics"] == pytest.approx(theirs, abs=1e-12)
    assert ours["num_images"] == 30 and ours["num_captions"] == 0
    assert 0.0 < ours["metrics"]["acc5"] < 1.0  # a random model: the comparison is not between two trivial answers


def test_multi_caption_retrieval_equals_clip_benchmarks_on_a_real_model(datasets, tiny_model):
    from clip_benchmark.datasets.builder import image_captions_collate_fn
    from clip_benchmark.metrics import zeroshot_retrieval

    source = open_source(str(datasets["retrieval"]))
    section = EvalSection(**{**ONLY, "retrieval": True}, batch_size=4)
    ours = run_suite(tiny_model, source, section, "shapes-rn-tiny").results[0]

    transform = image_transform(tiny_model)
    dataset = [(transform(record.image), list(record.all_captions)) for record in source.read()]
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=False, collate_fn=image_captions_collate_fn)
    theirs = zeroshot_retrieval.evaluate(tiny_model.model, loader, tiny_model.tokenizer, device="cpu", amp=False, recall_k_list=[1, 5, 10])

    assert ours["metrics"] == pytest.approx(theirs, abs=1e-12)
    assert ours["num_images"] == 12 and ours["num_captions"] == sum(len(captions_of(index)) for index in range(12))


class LookupModel(torch.nn.Module):
    """Images are their own embeddings; a text `t<j>` is row j of a table. Lets CLIP_benchmark's `evaluate`
    run on embeddings chosen to tie."""

    def __init__(self, text_table: torch.Tensor):
        super().__init__()
        self.text_table = text_table

    def encode_image(self, images):
        return images

    def encode_text(self, tokens):
        return self.text_table[tokens]


def lookup_tokenizer(texts):
    return torch.tensor([int(text[1:]) for text in texts])


@pytest.mark.parametrize("seed", range(4))
def test_retrieval_metrics_equal_clip_benchmarks_with_ties_and_shared_captions(seed):
    from clip_benchmark.datasets.builder import image_captions_collate_fn
    from clip_benchmark.metrics import zeroshot_retrieval

    generator = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(15, 6, generator=generator), dim=1)
    images[7] = images[3]  # two images tie for every query
    captions_per_image = [1 + (index * 7 + seed) % 5 for index in range(15)]
    text_to_image = torch.tensor([image for image, count in enumerate(captions_per_image) for _ in range(count)])
    texts = F.normalize(images[text_to_image] + 0.8 * torch.randn(len(text_to_image), 6, generator=generator), dim=1)
    texts[5] = texts[1]  # the same caption written for two images (or twice for one)

    ours = retrieval_metrics(images, texts, text_to_image)
    names = [f"t{j}" for j in range(len(texts))]
    per_image = [[names[j] for j in range(len(names)) if text_to_image[j] == image] for image in range(15)]
    loader = torch.utils.data.DataLoader(list(zip(images, per_image)), batch_size=4, collate_fn=image_captions_collate_fn)
    theirs = zeroshot_retrieval.evaluate(LookupModel(texts), loader, lookup_tokenizer, device="cpu", amp=False, recall_k_list=[1, 5, 10])
    assert ours == pytest.approx(theirs, abs=1e-12)


@pytest.mark.parametrize("num_classes", [3, 5, 8])
def test_classification_metrics_equal_clip_benchmarks(num_classes):
    from clip_benchmark.metrics import zeroshot_classification

    generator = torch.Generator().manual_seed(num_classes)
    class_table = F.normalize(torch.randn(num_classes, 4, generator=generator), dim=1)
    class_table[1] = class_table[0]  # two classes tie on every image
    labels = torch.arange(40) % num_classes
    labels[labels == num_classes - 1] = 0  # one class never occurs: mean per-class recall skips it
    images = F.normalize(class_table[labels] + 0.9 * torch.randn(40, 4, generator=generator), dim=1)
    names = [f"t{j}" for j in range(num_classes)]
    loader = torch.utils.data.DataLoader(Labelled(zip(images, labels), names), batch_size=16)
    theirs = zeroshot_classification.evaluate(LookupModel(class_table), loader, lookup_tokenizer, names, ["{c}"], device="cpu", amp=False)

    classifier = zeroshot_classification.zero_shot_classifier(LookupModel(class_table), lookup_tokenizer, names, ["{c}"], "cpu", amp=False)
    ours = classification_metrics(images @ classifier, labels, with_acc5=num_classes >= 5)
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert (math.isnan(ours[key]) and math.isnan(value)) if key == "acc5" and num_classes < 5 else ours[key] == pytest.approx(value, abs=1e-12)


def test_clip_benchmarks_table_builder_reads_vlp_results(tmp_path, datasets, tiny_model):
    source = open_source(str(datasets["classification"]))
    section = EvalSection(**{**ONLY, "zeroshot": True, "linear_probe": True}, probe_split=(0.5, 0.25), batch_size=16, language="en")
    results = run_suite(tiny_model, source, section, "shapes-rn-tiny", pretrained="/weights/epoch_3.pt").results
    files = write_results(results, str(tmp_path / "results"))
    assert [path.rsplit("/", 1)[-1] for path in files] == [
        "toy-classes_epoch_3.pt_shapes-rn-tiny_en_zeroshot_classification.json",
        "toy-classes_epoch_3.pt_shapes-rn-tiny_en_linear_probe.json",
    ]
    document = json.loads(open(files[1]).read())
    assert list(document)[:6] == ["dataset", "model", "pretrained", "task", "metrics", "language"]
    assert {"lp_acc1", "lp_acc5", "lp_mean_per_class_recall", "weight_decay"} <= set(document["metrics"])

    cli = clip_benchmark_cli()
    table = tmp_path / "benchmark.csv"
    cli.main_build(type("Args", (), {"files": [str(tmp_path / "results")], "output": str(table)})())
    rows = {row["task"]: row for row in csv.DictReader(table.open())}
    assert rows["zeroshot_classification"]["model_fullname"] == "shapes-rn-tiny /weights/epoch_3.pt"
    assert rows["zeroshot_classification"]["dataset"] == "wds/toy-classes" and rows["zeroshot_classification"]["language"] == "en"
    assert float(rows["zeroshot_classification"]["acc1"]) == results[0]["metrics"]["acc1"]
    assert float(rows["linear_probe"]["lp_acc1"]) == results[1]["metrics"]["lp_acc1"]
    assert rows["linear_probe"]["num_images"] == str(results[1]["num_images"])


def test_file_names_follow_clip_benchmarks_output_template():
    """Its cli formats `{dataset}_{pretrained}_{model}_{language}_{task}.json` with `wds/` dropped, `/` in the
    dataset as `_`, and a weights file by its base name."""
    result = {"dataset": "wds/vtab/cifar10", "model": "ViT-B-32", "pretrained": "/ckpt/epoch_32.pt", "task": "zeroshot_classification", "language": "en"}
    assert result_filename(result) == "vtab_cifar10_epoch_32.pt_ViT-B-32_en_zeroshot_classification.json"
    assert result_filename({**result, "pretrained": "models:/shapes-clip@champion"}) == "vtab_cifar10_shapes-clip@champion_ViT-B-32_en_zeroshot_classification.json"


def test_imagenet_names_and_templates_are_clip_benchmarks():
    from importlib.resources import files

    from vlp.workloads.evaluation.prompts import named_classnames, named_templates

    package = files("clip_benchmark.datasets")
    classnames = json.loads(package.joinpath("en_classnames.json").read_text())["imagenet1k"]
    templates = json.loads(package.joinpath("en_zeroshot_classification_templates.json").read_text())["imagenet1k"]
    assert list(named_classnames("imagenet1k")) == classnames and len(classnames) == 1000
    assert [template.replace("{}", "{c}") for template in named_templates("openai_imagenet")] == templates


def test_linear_probe_trains_on_the_train_split_folder_and_tests_on_the_test_split(tmp_path, tiny_model):
    root = write_classification(tmp_path / "wds_toy", 12)
    write_classification(root, 24, split="train")
    section = EvalSection(**{**ONLY, "linear_probe": True}, probe_split=(0.75, 0.2), batch_size=16)
    (result,) = run_suite(tiny_model, open_source(str(root)), section, "shapes-rn-tiny", probe_source=open_source(str(root / "train"))).results
    assert result["num_images"] == 12 and result["metrics"]["num_train_images"] == 24
    assert 0.0 <= result["metrics"]["lp_acc1"] <= 1.0 and result["metrics"]["lp_acc5"] >= result["metrics"]["lp_acc1"]
