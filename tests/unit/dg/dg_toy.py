"""Small domain-labelled data for DG tests, built in memory: the class is a colour, the domain the background."""

from __future__ import annotations

import torch

from vlp.workloads.data.image_transforms import ImagePreprocess
from vlp.workloads.dg.data import DomainData, ImageRows
from vlp.workloads.evaluation.transform import EvalImageTransform
from vlp.workloads.models.catalog import load_model_cfg
from vlp.workloads.models.factory import build_model_from_cfg

CLASSES = ("red", "green", "blue")
DOMAINS = ("dark", "grey", "light")


def colour_domains(per_cell: int = 6, size: int = 32) -> DomainData:
    """`per_cell` images of every (class, domain): a coloured square on a dark, grey or light background."""
    images, labels, domains = [], [], []
    for d, background in enumerate((20, 120, 220)):
        for c in range(len(CLASSES)):
            for i in range(per_cell):
                image = torch.full((3, size, size), background, dtype=torch.uint8)
                x = 4 + 2 * i % 12
                image[:, 8:24, x : x + 16] = 0
                image[c, 8:24, x : x + 16] = 255
                images.append(image)
                labels.append(c)
                domains.append(d)
    transform = EvalImageTransform(ImagePreprocess(size=(size, size), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    return DomainData(ImageRows.of(torch.stack(images)), torch.tensor(labels), torch.tensor(domains), CLASSES, DOMAINS, transform)


def tiny_pretrained(preset: str = "shapes-rn-tiny"):
    torch.manual_seed(0)
    built = build_model_from_cfg(load_model_cfg(preset))
    built.model.eval().requires_grad_(False)
    return built
