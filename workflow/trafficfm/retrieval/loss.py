"""Multi-positive contrastive loss over the organisers' matching relation.

A plain CLIP loss has one positive per row and so pushes apart a caption and every *other* image
of the same attribute text: wrong here, where one query matches many images. This loss takes the
relation from :mod:`.relevance` for every (caption, image) pair in the (gathered) batch and uses
the normalised relevance row as the target distribution of a softmax over similarities
(similarity-distribution matching; equal to multi-positive InfoNCE averaged over the positives):

    text -> image:  CE( softmax(s * t_q . v_i)_i ,  R[q, i] / sum_i R[q, i] )
    image -> text:  CE( softmax(s * v_i . t_q)_q ,  R[q, i] / sum_q R[q, i] )

Every row has at least one positive (a caption always matches its own image). With
``label_smoothing`` a small share of the target is spread over all columns.

Distributed: features and attribute ids are gathered from every rank (features with gradient,
as open_clip's ``gather_with_grad``); each rank computes the loss of its own rows against the
whole gathered batch ("local loss"), so the gradient is the full-batch one once DDP averages.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .relevance import relevance_from_table


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_batch(image_features: torch.Tensor, text_features: torch.Tensor, attribute_ids: torch.Tensor):
    """All ranks' features (with gradient) and attribute ids, in rank order; identity on one process."""
    _, world = _world()
    if world == 1:
        return image_features, text_features, attribute_ids
    from torch.distributed.nn.functional import all_gather as all_gather_with_grad

    images = torch.cat(all_gather_with_grad(image_features.contiguous()), dim=0)
    texts = torch.cat(all_gather_with_grad(text_features.contiguous()), dim=0)
    ids = [torch.empty_like(attribute_ids) for _ in range(world)]
    dist.all_gather(ids, attribute_ids.contiguous())
    return images, texts, torch.cat(ids, dim=0)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


class MultiPositiveLoss(nn.Module):
    """Symmetric multi-positive contrastive loss; ``relation_table`` = ``AttributeCodec.table()``."""

    def __init__(self, relation_table: torch.Tensor, label_smoothing: float = 0.0, text_weight: float = 0.5):
        super().__init__()
        self.register_buffer("relation_table", relation_table.clone(), persistent=False)
        self.label_smoothing = label_smoothing
        self.text_weight = text_weight

    def targets(self, query_ids: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
        """Boolean relevance (captions x images) for the batch."""
        return relevance_from_table(self.relation_table, query_ids, image_ids)

    def _distribution(self, positives: torch.Tensor) -> torch.Tensor:
        target = positives.float()
        target = target / target.sum(dim=1, keepdim=True).clamp_min(1.0)
        if self.label_smoothing:
            target = (1 - self.label_smoothing) * target + self.label_smoothing / target.shape[1]
        return target

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, attribute_ids: torch.Tensor,
                logit_scale: torch.Tensor) -> torch.Tensor:
        all_images, all_texts, all_ids = gather_batch(image_features, text_features, attribute_ids)
        scale = logit_scale.float().exp().reshape(())
        # text rows of this rank against every image; image rows of this rank against every text
        relation_t2i = self.targets(attribute_ids, all_ids)
        relation_i2t = self.targets(all_ids, attribute_ids).T
        logits_t2i = scale * text_features.float() @ all_images.float().T
        logits_i2t = scale * image_features.float() @ all_texts.float().T
        loss_t2i = soft_cross_entropy(logits_t2i, self._distribution(relation_t2i))
        loss_i2t = soft_cross_entropy(logits_i2t, self._distribution(relation_i2t))
        return self.text_weight * loss_t2i + (1 - self.text_weight) * loss_i2t
