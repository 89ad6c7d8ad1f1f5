"""FCOS detection machinery on torchvision ops: points, target assignment, losses, decoding.

The head itself is torchvision's ``FCOSClassificationHead`` / ``FCOSRegressionHead`` (the latter
with a choice of activation, ``model.BoxHead``); the assignment
follows torchvision's ``FCOS.compute_loss`` (centre sampling, one scale range per pyramid level, the
smallest box wins) with two changes that matter for tiny objects and for distributed training:

- a ground-truth box that no location falls strictly inside (a sign smaller than the finest stride)
  is given the nearest free location of the finest level instead of being silently dropped;
- the losses are sums divided by the number of positive locations **over all processes**, so a
  2-process run computes the same gradient as one process given the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection._utils import BoxLinearCoder
from torchvision.ops import batched_nms, boxes as box_ops, generalized_box_iou_loss, sigmoid_focal_loss

BOX_CODER = BoxLinearCoder(normalize_by_size=True)


def make_points(shapes: list[tuple[int, int]], strides: list[int], device, dtype=torch.float32) -> Tensor:
    """One square "anchor" per feature-map location: side = stride, centred on the location's pixel
    centre ``(i + 0.5) * stride``. Returns (sum of H*W, 4) boxes, level after level."""
    out = []
    for (h, w), s in zip(shapes, strides):
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * s
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        cx, cy = cx.reshape(-1), cy.reshape(-1)
        half = s / 2
        out.append(torch.stack([cx - half, cy - half, cx + half, cy + half], dim=1))
    return torch.cat(out)


def assign(
    anchors: Tensor, num_per_level: list[int], gt_boxes: Tensor, center_radius: float = 1.5
) -> Tensor:
    """Index of the ground-truth box each location regresses (-1 = background)."""
    n = anchors.shape[0]
    if gt_boxes.numel() == 0:
        return torch.full((n,), -1, dtype=torch.long, device=anchors.device)
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    sizes = anchors[:, 2] - anchors[:, 0]
    gt_centers = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    match = (centers[:, None, :] - gt_centers[None]).abs().amax(dim=2) < center_radius * sizes[:, None]
    x, y = centers[:, 0:1], centers[:, 1:2]
    dist = torch.stack([x - gt_boxes[:, 0], y - gt_boxes[:, 1], gt_boxes[:, 2] - x, gt_boxes[:, 3] - y], dim=2)
    match &= dist.amin(dim=2) > 0
    lower = sizes * 4
    lower[: num_per_level[0]] = 0
    upper = sizes * 8
    upper[-num_per_level[-1] :] = float("inf")
    reach = dist.amax(dim=2)
    match &= (reach > lower[:, None]) & (reach < upper[:, None])
    areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    score = match.to(torch.float32) * (1e8 - areas[None])
    best, idx = score.max(dim=1)
    idx[best < 1e-5] = -1
    # boxes with no location at all: the nearest free location of the finest level
    covered = torch.zeros(gt_boxes.shape[0], dtype=torch.bool, device=anchors.device)
    covered[idx[idx >= 0]] = True
    if not bool(covered.all()):
        fine = centers[: num_per_level[0]]
        for g in torch.nonzero(~covered).flatten().tolist():
            d = (fine - gt_centers[g]).abs().amax(dim=1)
            d[idx[: num_per_level[0]] >= 0] = float("inf")
            j = int(torch.argmin(d))
            if torch.isfinite(d[j]):
                idx[j] = g
    return idx


def fcos_losses(
    cls_logits: Tensor,
    bbox_reg: Tensor,
    ctrness: Tensor,
    anchors: Tensor,
    num_per_level: list[int],
    targets: list[dict[str, Tensor]],
    normalizer,
    center_radius: float = 1.5,
) -> dict[str, Tensor]:
    """Focal loss, GIoU loss and centre-ness BCE, each summed and divided by ``normalizer(num_pos)``."""
    cls_logits, bbox_reg, ctrness = cls_logits.float(), bbox_reg.float(), ctrness.float()
    num_classes = cls_logits.shape[-1]
    gt_classes, gt_boxes, fg = [], [], []
    for t in targets:
        boxes = t["boxes"].to(anchors)
        idx = assign(anchors, num_per_level, boxes, center_radius)
        pos = idx >= 0
        if boxes.numel() == 0:
            gt_boxes.append(torch.zeros_like(anchors))
            gt_classes.append(torch.zeros(anchors.shape[0], num_classes, device=anchors.device))
        else:
            safe = idx.clamp(min=0)
            gt_boxes.append(boxes[safe])
            onehot = F.one_hot(t["labels"].to(anchors.device)[safe], num_classes).float()
            onehot[~pos] = 0
            gt_classes.append(onehot)
        fg.append(pos)
    gt_classes_t = torch.stack(gt_classes)
    gt_boxes_t = torch.stack(gt_boxes)
    fg_t = torch.stack(fg)
    norm = normalizer(fg_t.sum())
    loss_cls = sigmoid_focal_loss(cls_logits, gt_classes_t, reduction="sum")
    anchors_b = anchors.expand_as(bbox_reg)
    pred = BOX_CODER.decode(bbox_reg, anchors_b)
    loss_box = generalized_box_iou_loss(pred[fg_t], gt_boxes_t[fg_t], reduction="sum")
    reg_t = BOX_CODER.encode(anchors_b, gt_boxes_t)
    lr, tb = reg_t[..., [0, 2]], reg_t[..., [1, 3]]
    ctr_t = torch.sqrt(
        (lr.amin(-1) / lr.amax(-1).clamp(min=1e-6)).clamp(min=0) * (tb.amin(-1) / tb.amax(-1).clamp(min=1e-6)).clamp(min=0)
    )
    loss_ctr = F.binary_cross_entropy_with_logits(ctrness[..., 0][fg_t], ctr_t[fg_t], reduction="sum")
    return {"det_cls": loss_cls / norm, "det_box": loss_box / norm, "det_ctr": loss_ctr / norm}


@torch.no_grad()
def decode_detections(
    cls_logits: Tensor,
    bbox_reg: Tensor,
    ctrness: Tensor,
    anchors: Tensor,
    num_per_level: list[int],
    image_sizes: list[tuple[int, int]],
    score_thresh: float = 0.05,
    nms_thresh: float = 0.6,
    topk_candidates: int = 1000,
    max_detections: int = 100,
    class_agnostic_nms: bool = False,
) -> list[dict[str, Tensor]]:
    """Per image: score = sqrt(sigmoid(class) * sigmoid(centre-ness)), top-k per level, NMS per class
    (or over all classes: one label per object), boxes clipped to ``image_sizes`` (h, w).
    Returns dicts of boxes (xyxy), scores, labels."""
    results = []
    cls_logits, bbox_reg, ctrness = cls_logits.float(), bbox_reg.float(), ctrness.float()
    num_classes = cls_logits.shape[-1]
    for i, (h, w) in enumerate(image_sizes):
        boxes_all, scores_all, labels_all = [], [], []
        start = 0
        for n in num_per_level:
            sl = slice(start, start + n)
            start += n
            scores = torch.sqrt(torch.sigmoid(cls_logits[i, sl]) * torch.sigmoid(ctrness[i, sl])).flatten()
            keep = torch.nonzero(scores > score_thresh).flatten()
            scores = scores[keep]
            if scores.numel() > topk_candidates:
                scores, order = scores.topk(topk_candidates)
                keep = keep[order]
            loc = keep // num_classes
            labels = keep % num_classes
            boxes = BOX_CODER.decode(bbox_reg[i, sl][loc], anchors[sl][loc])
            boxes = box_ops.clip_boxes_to_image(boxes, (h, w))
            boxes_all.append(boxes)
            scores_all.append(scores)
            labels_all.append(labels)
        boxes = torch.cat(boxes_all)
        scores = torch.cat(scores_all)
        labels = torch.cat(labels_all)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        groups = torch.zeros_like(labels) if class_agnostic_nms else labels
        keep = batched_nms(boxes, scores, groups, nms_thresh)[:max_detections]
        results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
    return results
