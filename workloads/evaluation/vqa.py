"""VQA accuracy as answer classification: a linear probe over a pair representation of (image, question).

A fusion model (METER, FLAVA) gives each pair its fused [CLS] (`fused_cls(images, texts)`); a dual encoder
without fusion gives the baseline the fusion papers compare against, the concatenation of its normalised image
and question embeddings. The probe is `linear_probe`'s: multinomial logistic regression, L2 penalty searched on a
validation split, refitted on train + validation, scored once on the test split. The splits are drawn over IMAGES
(`eval.probe_split` fractions), so no test image was seen in training with another question.

Metrics (task `vqa`): `acc1` over the test questions, `acc1/<kind>` per question kind (colour, count, ...), and
`prior_acc1`, what answering from the question alone reaches (each test question gets the most common training
answer of the same question text, else of its kind): the part of `acc1` that needs no image.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from vlp.workloads.data.readers import EvalRecord
from vlp.workloads.evaluation.linear_probe import ProbeSplits, fit_searched_probe, predict_logits, split_indices

TASK = "vqa"
# (input pixels [B, 3, H, W], tokenised questions [B, L]) -> [B, D] pair representations
PairEncoder = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def fused_pair_encoder(model, tokenizer) -> PairEncoder | None:
    """The model's fused [CLS] of each (image, question), or None for a model without fusion."""
    if not hasattr(model, "fused_cls"):
        return None
    return lambda pixels, texts: model.fused_cls(pixels, tokenizer(texts).to(pixels.device)).float()


@dataclass
class QuestionSet:
    """Every question of the encoded images, with its image's row and, for a fusion model, its pair features."""

    image_rows: list[int] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    features: list[torch.Tensor] = field(default_factory=list)


class QuestionCollector:
    """A batch hook for `encode_records`: collects each image's questions (and, given `encode_pairs`, the pair
    features of the batch's images with their questions) in the order the images are encoded."""

    def __init__(self, encode_pairs: Callable[[torch.Tensor, list[str]], torch.Tensor] | None = None, batch_size: int = 500):
        self.encode_pairs = encode_pairs
        self.batch_size = batch_size
        self.set = QuestionSet()
        self.images_seen = 0

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor, records: list[EvalRecord]) -> None:
        rows, texts = [], []
        for offset, record in enumerate(records):
            for question in record.questions:
                rows.append(offset)
                texts.append(question["question"])
                self.set.image_rows.append(self.images_seen + offset)
                self.set.answers.append(str(question["answer"]))
                self.set.kinds.append(question.get("kind") or "other")
        self.set.questions.extend(texts)
        self.images_seen += len(records)
        if self.encode_pairs is not None:
            for start in range(0, len(rows), self.batch_size):
                chunk = torch.tensor(rows[start : start + self.batch_size])
                self.set.features.append(self.encode_pairs(pixels[chunk], texts[start : start + self.batch_size]))


def concat_features(image_features: torch.Tensor, question_features: torch.Tensor, image_rows: list[int]) -> torch.Tensor:
    """The dual-encoder baseline's pair representation: [normalised image embedding, normalised question embedding]."""
    return torch.cat([F.normalize(image_features[torch.tensor(image_rows)], dim=-1), F.normalize(question_features, dim=-1)], dim=1)


def split_by_image(image_rows: torch.Tensor, fractions: tuple[float, float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Question indices of train / validation / test, the IMAGES cut by `fractions` (every question of an image
    lands in the same split)."""
    images = torch.unique(image_rows)
    train, val, test = (images[part] for part in split_indices(len(images), fractions, seed))
    return tuple(torch.nonzero(torch.isin(image_rows, part)).flatten() for part in (train, val, test))


def vqa_accuracy(
    features: torch.Tensor,
    questions: QuestionSet,
    vocabulary: tuple[str, ...],
    fractions: tuple[float, float],
    weight_decays: tuple[float, ...],
    seed: int = 0,
) -> dict[str, float] | None:
    """Metrics of the probe over `features` (one row per question of `questions`); None when a split is empty.
    Answers outside `vocabulary` are left out (they could never be predicted)."""
    index = {answer: position for position, answer in enumerate(vocabulary)}
    keep = [row for row, answer in enumerate(questions.answers) if answer in index]
    if not keep:
        return None
    labels = torch.tensor([index[questions.answers[row]] for row in keep])
    image_rows = torch.tensor([questions.image_rows[row] for row in keep])
    kinds = [questions.kinds[row] for row in keep]
    texts = [questions.questions[row] for row in keep]
    features = features[torch.tensor(keep)]
    train, val, test = split_by_image(image_rows, fractions, seed)
    if min(len(train), len(val), len(test)) == 0:
        return None
    splits = ProbeSplits(features[train], labels[train], features[val], labels[val], features[test], labels[test])
    weight, bias, weight_decay, val_accuracy = fit_searched_probe(splits, len(vocabulary), weight_decays)
    correct = predict_logits(splits.test_features, weight, bias).argmax(dim=1) == splits.test_labels
    fitted = torch.cat([train, val]).tolist()
    prior = answer_prior([texts[row] for row in fitted], [kinds[row] for row in fitted], labels[torch.cat([train, val])].tolist())
    prior_correct = torch.tensor([prior(texts[row], kinds[row]) == int(labels[row]) for row in test.tolist()])
    metrics = {"acc1": correct.float().mean().item(), "prior_acc1": prior_correct.float().mean().item()}
    test_kinds = [kinds[row] for row in test.tolist()]
    for kind in sorted(set(test_kinds)):
        rows = torch.tensor([position for position, name in enumerate(test_kinds) if name == kind])
        metrics[f"acc1/{kind}"] = correct[rows].float().mean().item()
    return {
        **metrics, "weight_decay": weight_decay, "val_acc1": val_accuracy,
        "num_train_questions": len(fitted), "num_test_questions": len(test), "num_test_images": len(torch.unique(image_rows[test])),
    }


def answer_prior(texts: list[str], kinds: list[str], labels: list[int]) -> Callable[[str, str], int]:
    """Question-only answering: the most common answer of the same question text, else of the same kind, else overall."""
    by_text: dict[str, Counter] = {}
    by_kind: dict[str, Counter] = {}
    for text, kind, label in zip(texts, kinds, labels):
        by_text.setdefault(text, Counter())[label] += 1
        by_kind.setdefault(kind, Counter())[label] += 1
    overall = Counter(labels)

    def answer(text: str, kind: str) -> int:
        counts = by_text.get(text) or by_kind.get(kind) or overall
        return counts.most_common(1)[0][0]

    return answer
