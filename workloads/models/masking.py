"""Which text tokens and image patches a masked-modeling step hides, drawn from torch's default CPU generator.

Every draw is made for the GLOBAL batch (this process's rows times the world size) and each process keeps its own
rows: the masks of a two-process run are exactly those of a one-process run on the whole batch, every process
draws the same numbers in the same order (so the generators stay in step), and a resumed run replays the same
masks because the checkpoint saves and restores torch's generator.

- `mask_tokens`: BERT's rule, in the order of draws of Hugging Face's `DataCollatorForLanguageModeling`
  (`torch_mask_tokens`): each maskable token is chosen with `probability`; of the chosen, `mask_share` become
  [MASK], `random_share` a random vocabulary id, the rest stay. Special tokens (start, end, padding) are never
  chosen; with `world_size == 1` the result is the collator's, draw for draw.
- `random_patch_mask`: MAE's per-image random subset (argsort of uniform noise; `int(P * (1 - ratio))` kept).
- `block_patch_mask`: BEiT's block-wise masking (rectangles of random area and aspect ratio until the ratio is
  reached), on torch's generator instead of Python's `random`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vlp.workloads.objectives.gather import world

IGNORE_INDEX = -100
"""Label of positions that are not predicted (PyTorch's cross-entropy default `ignore_index`)."""


@dataclass(frozen=True)
class MaskedTokens:
    ids: torch.Tensor
    """[B, L] input ids with [MASK] (`mask_id`) and random ids in place of some chosen tokens."""
    labels: torch.Tensor
    """[B, L] original ids at the chosen positions, IGNORE_INDEX elsewhere."""


def _global_rows(local_rows: int) -> tuple[int, slice]:
    rank, size = world()
    return local_rows * size, slice(rank * local_rows, (rank + 1) * local_rows)


def content_positions(ids: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """[B, L] bool: the caption's own tokens, strictly between the start token (position 0) and the end token.

    The end token is where CLIP's text tower pools (the highest id, `argmax`); padding after it is excluded too."""
    positions = torch.arange(ids.shape[1], device=ids.device)
    end = ids.argmax(dim=1, keepdim=True)
    return (positions > 0) & (positions < end) & (ids != pad_id)


def mask_tokens(
    ids: torch.Tensor,
    maskable: torch.Tensor,
    probability: float,
    mask_id: int,
    vocab_size: int,
    mask_share: float = 0.8,
    random_share: float = 0.1,
    generator: torch.Generator | None = None,
) -> MaskedTokens:
    """BERT-style masking of `ids` [B, L] at `maskable` positions (see the module docstring)."""
    rows, mine = _global_rows(ids.shape[0])
    shape = (rows, ids.shape[1])
    # Every process draws the whole batch's numbers (keeping the generators in step) and keeps its own rows; other
    # processes' rows keep the plain probability (only how many numbers they draw matters here).
    chance = torch.full(shape, probability)
    chance[mine].masked_fill_(~maskable.cpu(), 0.0)
    chosen = torch.bernoulli(chance, generator=generator).bool()
    replaced = torch.bernoulli(torch.full(shape, mask_share), generator=generator).bool() & chosen
    inputs = ids.cpu().clone()
    labels = inputs.clone()
    chosen, replaced = chosen[mine], replaced[mine]
    labels[~chosen] = IGNORE_INDEX
    inputs[replaced] = mask_id
    if mask_share < 1 and random_share > 0:
        scaled = random_share / (1 - mask_share)
        randomised = torch.bernoulli(torch.full(shape, scaled), generator=generator).bool()[mine] & chosen & ~replaced
        random_ids = torch.randint(vocab_size, shape, dtype=torch.long, generator=generator)[mine]
        inputs[randomised] = random_ids[randomised]
    return MaskedTokens(inputs.to(ids.device), labels.to(ids.device))


def random_patch_mask(batch: int, patches: int, ratio: float, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """[batch, patches] bool, True = masked: MAE's random subset of `patches - int(patches * (1 - ratio))` per image."""
    rows, mine = _global_rows(batch)
    noise = torch.rand(rows, patches, generator=generator)
    keep = int(patches * (1 - ratio))
    rank_of_patch = torch.argsort(torch.argsort(noise, dim=1), dim=1)
    return (rank_of_patch >= keep)[mine].to(device)


def block_patch_mask(
    batch: int,
    grid: tuple[int, int],
    ratio: float,
    min_block: int = 4,
    min_aspect: float = 0.3,
    attempts: int = 10,
    device=None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """[batch, H*W] bool, True = masked: BEiT's block-wise masking of about `ratio` of an H x W patch grid.

    Rectangles of area uniform in [min_block, remaining] and log-uniform aspect ratio in [min_aspect, 1/min_aspect]
    are added until the target count is reached or `attempts` draws in a row add nothing (BEiT's MaskingGenerator)."""
    height, width = grid
    target = int(round(ratio * height * width))
    rows, mine = _global_rows(batch)
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    masks = torch.zeros(rows, height, width, dtype=torch.bool)
    for mask in masks:
        count = 0
        while count < target:
            added = _add_block(mask, target - count, min_block, log_aspect, attempts, generator)
            if added == 0:
                break
            count += added
    return masks.flatten(1)[mine].to(device)


def _add_block(mask: torch.Tensor, most: int, least: int, log_aspect: tuple[float, float], attempts: int, generator) -> int:
    height, width = mask.shape
    for _ in range(attempts):
        values = torch.rand(2, generator=generator)
        area = least + float(values[0]) * (most - least)
        aspect = math.exp(log_aspect[0] + float(values[1]) * (log_aspect[1] - log_aspect[0]))
        block_height = int(round(math.sqrt(area * aspect)))
        block_width = int(round(math.sqrt(area / aspect)))
        if 0 < block_width < width and 0 < block_height < height:
            top = int(torch.randint(0, height - block_height + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - block_width + 1, (1,), generator=generator))
            region = mask[top : top + block_height, left : left + block_width]
            added = int((~region).sum())
            if 0 < added <= most:
                region.fill_(True)
                return added
    return 0


def draw_patch_mask(kind: str, batch: int, grid: tuple[int, int], ratio: float, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """`model.masked_modeling.image_masking` `random` or `block`: [batch, H*W] bool, True = masked."""
    if kind == "block":
        return block_patch_mask(batch, grid, ratio, device=device, generator=generator)
    return random_patch_mask(batch, grid[0] * grid[1], ratio, device=device, generator=generator)
