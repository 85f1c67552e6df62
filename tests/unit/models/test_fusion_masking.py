"""Masking for the masked-modeling terms: BERT's token masking equals Hugging Face's collator draw for draw, special
tokens are never touched, MAE's random patch masking and BEiT's block masking hide what they should."""

from __future__ import annotations

import pytest
import torch

from vlp.workloads.models.masking import IGNORE_INDEX, block_patch_mask, content_positions, draw_patch_mask, mask_tokens, random_patch_mask

VOCAB = 49408
SOT, EOT = 49406, 49407


def captions(batch: int = 16, length: int = 12, seed: int = 0) -> torch.Tensor:
    """CLIP-layout ids: start token, 1..9 content tokens, end token, zero padding."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.zeros(batch, length, dtype=torch.long)
    for row in range(batch):
        words = int(torch.randint(1, length - 2, (1,), generator=generator))
        ids[row, 0] = SOT
        ids[row, 1 : 1 + words] = torch.randint(1, 40000, (words,), generator=generator)
        ids[row, 1 + words] = EOT
    return ids


class _StubTokenizer:
    """What DataCollatorForLanguageModeling reads of a tokenizer."""

    mask_token = "[MASK]"

    def convert_tokens_to_ids(self, token):
        return VOCAB

    def __len__(self):
        return VOCAB


def test_content_positions_are_between_start_and_end_token():
    ids = torch.tensor([[SOT, 5, 6, EOT, 0, 0], [SOT, EOT, 0, 0, 0, 0]])
    assert content_positions(ids).tolist() == [[False, True, True, False, False, False], [False] * 6]


@pytest.mark.parametrize("shares", [(0.8, 0.1), (1.0, 0.0), (0.5, 0.3)])
def test_token_masking_equals_hugging_face_collator(shares):
    from transformers import DataCollatorForLanguageModeling

    mask_share, random_share = shares
    ids = captions()
    maskable = content_positions(ids)
    collator = DataCollatorForLanguageModeling(_StubTokenizer(), mlm_probability=0.3, mask_replace_prob=mask_share, random_replace_prob=random_share)
    torch.manual_seed(3)
    expected_inputs, expected_labels = collator.torch_mask_tokens(ids.clone(), special_tokens_mask=~maskable)
    torch.manual_seed(3)
    masked = mask_tokens(ids, maskable, 0.3, VOCAB, VOCAB, mask_share, random_share)
    assert torch.equal(masked.ids, expected_inputs)
    assert torch.equal(masked.labels, expected_labels)


def test_token_masking_never_touches_special_or_padding_tokens():
    ids = captions(batch=64, length=16)
    maskable = content_positions(ids)
    masked = mask_tokens(ids, maskable, 0.9, VOCAB, VOCAB, generator=torch.Generator().manual_seed(0))
    assert torch.equal(masked.ids[~maskable], ids[~maskable])
    assert bool((masked.labels[~maskable] == IGNORE_INDEX).all())
    chosen = masked.labels != IGNORE_INDEX
    assert torch.equal(masked.labels[chosen], ids[chosen])
    # At 0.9 most content tokens are chosen; of those about 80% become [MASK].
    assert chosen.sum() > 0.8 * maskable.sum()
    share_masked = float((masked.ids[chosen] == VOCAB).float().mean())
    assert 0.7 < share_masked < 0.9


def test_random_patch_mask_equals_mae():
    torch.manual_seed(5)
    mask = random_patch_mask(6, 16, 0.75)
    # MAE's random_masking (models_mae.py), the mask part.
    torch.manual_seed(5)
    noise = torch.rand(6, 16)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    len_keep = int(16 * (1 - 0.75))
    expected = torch.ones(6, 16)
    expected[:, :len_keep] = 0
    expected = torch.gather(expected, dim=1, index=ids_restore)
    assert torch.equal(mask, expected.bool())
    assert mask.sum(dim=1).tolist() == [12] * 6


def test_block_mask_covers_about_the_ratio_in_rectangles():
    mask = block_patch_mask(32, (8, 8), 0.4, min_block=4, generator=torch.Generator().manual_seed(0))
    counts = mask.sum(dim=1)
    target = round(0.4 * 64)
    assert bool((counts <= target).all()) and float(counts.float().mean()) > 0.8 * target
    again = block_patch_mask(32, (8, 8), 0.4, min_block=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)
    # Blocks, not scattered patches: most masked patches have a masked 4-neighbour.
    grid = mask.reshape(32, 8, 8)
    neighbour = torch.zeros_like(grid)
    neighbour[:, 1:] |= grid[:, :-1]
    neighbour[:, :-1] |= grid[:, 1:]
    neighbour[:, :, 1:] |= grid[:, :, :-1]
    neighbour[:, :, :-1] |= grid[:, :, 1:]
    assert float((neighbour & grid).sum() / grid.sum()) > 0.9


def test_masks_replay_from_the_saved_generator_state():
    torch.manual_seed(11)
    state = torch.get_rng_state()
    first = (draw_patch_mask("block", 4, (4, 4), 0.4), mask_tokens(captions(4), content_positions(captions(4)), 0.5, VOCAB, VOCAB).ids)
    torch.set_rng_state(state)
    second = (draw_patch_mask("block", 4, (4, 4), 0.4), mask_tokens(captions(4), content_positions(captions(4)), 0.5, VOCAB, VOCAB).ids)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
