"""OmniVL's unified vision-language contrastive loss (UniVLC, as UniCL): labelled samples count as positives of
every sample of their class, pairs without a label (label < 0) only of their own caption.

For row i of the global batch, the positives P(i) are {i} and every j with label_j = label_i >= 0; the loss is
the cross-entropy against the uniform distribution over P(i), both ways (video -> texts, text -> videos), averaged:

    l_i = -(1/|P(i)|) sum_{j in P(i)} log softmax_j(s * <v_i, t_j>)     (and the same for t_i against the videos)

With no labels in the batch it is exactly symmetric InfoNCE. Rows and gathering follow InfoNCELoss
(`local_loss`, `gather_with_grad`); the labels are gathered as constants.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlp.workloads.objectives.gather import gather, gather_values, world
from vlp.workloads.objectives.gathered_loss import GatheredContrastiveLoss


def positive_targets(row_labels: torch.Tensor, column_labels: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """[n, N] target distribution: uniform over each row's positives (its own column `rows[r]`, and every column
    that shares its non-negative label)."""
    positives = (row_labels[:, None] == column_labels[None, :]) & (row_labels[:, None] >= 0)
    positives[torch.arange(rows.shape[0], device=rows.device), rows] = True
    positives = positives.float()
    return positives / positives.sum(dim=1, keepdim=True)


class UnifiedContrastiveLoss(GatheredContrastiveLoss):
    def forward(self, video_features, text_features, logit_scale, labels: torch.Tensor) -> torch.Tensor:
        rank, _ = world()
        all_videos = gather(video_features, self.gather_with_grad)
        all_texts = gather(text_features, self.gather_with_grad)
        all_labels = gather_values(labels)
        if self.local_loss:
            logits_per_video = logit_scale * self.score(video_features, all_texts)
            logits_per_text = logit_scale * self.score(all_videos, text_features).T
            rows = torch.arange(video_features.shape[0], device=video_features.device) + rank * video_features.shape[0]
            row_labels = labels
        else:
            logits_per_video = logit_scale * self.score(all_videos, all_texts)
            logits_per_text = logits_per_video.T
            rows = torch.arange(logits_per_video.shape[0], device=video_features.device)
            row_labels = all_labels
        # Same-label is symmetric, so the texts' positives among the videos are the videos' among the texts.
        targets = positive_targets(row_labels, all_labels, rows)
        return (F.cross_entropy(logits_per_video, targets) + F.cross_entropy(logits_per_text, targets)) / 2
