"""Second look at each detection: classify a zoomed-in patch of the image with the shared backbone.

Tiny signs (8-16 px) are found well by the FCOS head, but their type (a speed limit of 30, 40, 50 or
80; a warning or a prohibition) sits in a handful of pixels that the stride-4..32 features blur.
The refinement cuts a square patch around each candidate box (``context`` x its longer side) from
the very image the detector saw, resizes it to ``size`` x ``size`` with ``roi_align`` (so a 10 px
sign becomes ~24 px across) and classifies it into the detection classes + background with its own
small head on the backbone's last features. Final score of class c = sqrt(objectness x p(c)).

Training patches: jittered ground-truth boxes and random background boxes (drawn by the data
pipeline, so they are reproducible per sample), plus the detector's own top proposals of the batch
labelled by IoU (hard negatives and realistic positives).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_iou, boxes as box_ops, roi_align

from .detection import BOX_CODER

IGNORE = -100


def square_boxes(boxes: Tensor, context: float, min_side: float = 8.0) -> Tensor:
    """Squares centred on ``boxes`` with side ``context`` x the longer side (at least ``min_side``)."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    side = torch.clamp((boxes[:, 2:] - boxes[:, :2]).amax(dim=1) * context, min=min_side) / 2
    return torch.stack([cx - side, cy - side, cx + side, cy + side], dim=1)


def extract_patches(images: Tensor, boxes: list[Tensor], size: int, context: float) -> Tensor:
    """(sum of boxes, C, size, size) patches of the (normalised) ``images`` around ``boxes``."""
    rois = [square_boxes(b.to(images.dtype), context) for b in boxes]
    return roi_align(images, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True)


@torch.no_grad()
def propose(cls_logits: Tensor, bbox_reg: Tensor, ctrness: Tensor, anchors: Tensor, num_per_level: list[int],
            image_sizes: list[tuple[int, int]], max_boxes: int, score_thresh: float = 0.05,
            nms_thresh: float = 0.6, topk_candidates: int = 1000) -> list[tuple[Tensor, Tensor]]:
    """Class-agnostic candidates: objectness = sqrt(max_c sigmoid(class_c) * sigmoid(centre-ness)),
    top-k per level, NMS over all classes, at most ``max_boxes`` per image: [(boxes, scores), ...]."""
    out = []
    obj_all = torch.sqrt(torch.sigmoid(cls_logits.float()).amax(dim=-1) * torch.sigmoid(ctrness.float()[..., 0]))
    for i, (h, w) in enumerate(image_sizes):
        keep_all = []
        start = 0
        for n in num_per_level:
            scores = obj_all[i, start : start + n]
            keep = torch.nonzero(scores > score_thresh).flatten()
            if keep.numel() > topk_candidates:
                keep = keep[scores[keep].topk(topk_candidates).indices]
            keep_all.append(keep + start)
            start += n
        idx = torch.cat(keep_all)
        boxes = box_ops.clip_boxes_to_image(BOX_CODER.decode(bbox_reg[i, idx].float(), anchors[idx]), (h, w))
        scores = obj_all[i, idx]
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores = boxes[valid], scores[valid]
        keep = batched_nms(boxes, scores, torch.zeros_like(scores, dtype=torch.long), nms_thresh)[:max_boxes]
        out.append((boxes[keep], scores[keep]))
    return out


def label_proposals(proposals: Tensor, gt_boxes: Tensor, gt_labels: Tensor, background: int,
                    pos_iou: float = 0.5, neg_iou: float = 0.3) -> Tensor:
    """Class of the matched ground truth (IoU >= pos_iou), background (< neg_iou), else ignored."""
    labels = torch.full((proposals.shape[0],), background, dtype=torch.long, device=proposals.device)
    if proposals.numel() == 0 or gt_boxes.numel() == 0:
        return labels
    iou = box_iou(proposals, gt_boxes.to(proposals))
    best, j = iou.max(dim=1)
    labels[best >= pos_iou] = gt_labels.to(proposals.device)[j[best >= pos_iou]]
    labels[(best >= neg_iou) & (best < pos_iou)] = IGNORE
    return labels


def sample_training_boxes(boxes: np.ndarray, labels: np.ndarray, crop: int, n: int, background: int,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` boxes for refinement training of one crop: up to n/2 jittered ground-truth boxes (shift
    up to 15 % of the size, scale x0.85..1.2), the rest random background boxes of sign-like sizes
    that overlap no ground truth by IoU 0.3 or more (labelled ``background``)."""
    out_b, out_l = [], []
    if len(boxes):
        order = rng.permutation(len(boxes))[: max(1, n // 2)]
        for k in order:
            x1, y1, x2, y2 = boxes[k]
            w, h = x2 - x1, y2 - y1
            cx = (x1 + x2) / 2 + rng.uniform(-0.15, 0.15) * w
            cy = (y1 + y2) / 2 + rng.uniform(-0.15, 0.15) * h
            s = math.exp(rng.uniform(math.log(0.85), math.log(1.2)))
            out_b.append([cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2])
            out_l.append(int(labels[k]))
    if len(boxes):
        sides = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        lo, hi = max(6.0, float(sides.min()) * 0.7), max(12.0, float(sides.max()) * 1.4)
    else:
        lo, hi = 8.0, crop / 4
    tries = 0
    while len(out_b) < n:
        tries += 1
        side = math.exp(rng.uniform(math.log(lo), math.log(max(hi, lo + 1))))
        aspect = math.exp(rng.uniform(-0.3, 0.3))
        w, h = side * aspect, side / aspect
        x1 = rng.uniform(0, max(crop - w, 1))
        y1 = rng.uniform(0, max(crop - h, 1))
        cand = np.array([x1, y1, x1 + w, y1 + h])
        if len(boxes) and tries < 50:
            ix = np.clip(np.minimum(cand[2], boxes[:, 2]) - np.maximum(cand[0], boxes[:, 0]), 0, None)
            iy = np.clip(np.minimum(cand[3], boxes[:, 3]) - np.maximum(cand[1], boxes[:, 1]), 0, None)
            inter = ix * iy
            union = w * h + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
            if (inter / union).max() >= 0.3:
                continue
        out_b.append(cand.tolist())
        out_l.append(background)
    return np.asarray(out_b, dtype=np.float32).reshape(-1, 4), np.asarray(out_l, dtype=np.int64)
