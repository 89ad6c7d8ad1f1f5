"""The AllInOne model: one backbone + feature pyramid shared by three task heads.

- classification: the backbone's last (stride-32) features -> mean pooling -> linear (an optional
  hidden layer before the pooling: ``cls_hidden``);
- detection: torchvision's FCOS classification/regression heads (box distances through softplus
  by default: :class:`BoxHead`) on the pyramid levels named by
  ``det_strides`` (stride 4 by default, so signs of 8 px still cover several locations), plus an
  optional refinement head that re-classifies each candidate from a zoomed-in patch
  (:mod:`.refine`) through the same backbone;
- segmentation: a semantic-FPN head that merges all pyramid levels at stride 4 and upsamples.

Images enter as uint8-range tensors (0..255, RGB, NCHW); the model applies the backbone's mean/std.
``forward(task, images, targets)`` returns a dict of losses when targets are given, else raw outputs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.fcos import FCOSClassificationHead, FCOSRegressionHead
from torchvision.ops import FeaturePyramidNetwork

from .backbones import STRIDES, build_backbone
from .detection import decode_detections, fcos_losses, make_points
from ..config import plain
from ..distributed import global_normalizer
from .refine import IGNORE, extract_patches, label_proposals, propose

TASKS = ("cls", "det", "seg")


def _groups(channels: int) -> int:
    """GroupNorm groups: up to 32, at least 8 channels each (so a 1x1 map is still normalisable)."""
    for g in (32, 16, 8, 4, 2):
        if channels % g == 0 and channels // g >= 8:
            return g
    return 1


def _conv_gn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.GroupNorm(_groups(cout), cout), nn.ReLU(inplace=True)
    )


class BoxHead(FCOSRegressionHead):
    """torchvision's FCOS regression head with a choice of the activation that keeps distances >= 0.

    torchvision's ReLU can die: on release 3 with training seed 1 the left-distance output went
    negative at every location early in training, never received a gradient again, and every box
    ended at its anchor's centre on the left (GIoU loss stuck at 0.6, mAP@0.5 0.29 against 0.75 with
    seed 0). Softplus is positive too but never flat, so an output pushed down can come back.
    """

    def __init__(self, in_channels: int, num_convs: int, norm_layer, activation: str):
        super().__init__(in_channels, 1, num_convs, norm_layer=norm_layer)
        self.activation = {"relu": F.relu, "softplus": F.softplus}[activation]

    def forward(self, x: list[Tensor]) -> tuple[Tensor, Tensor]:
        regs, ctrs = [], []
        for features in x:
            feat = self.conv(features)
            n, _, h, w = feat.shape
            # (N, 4, H, W) -> (N, HW, 4) and (N, 1, H, W) -> (N, HW, 1), as torchvision orders them
            regs.append(self.activation(self.bbox_reg(feat)).permute(0, 2, 3, 1).reshape(n, h * w, 4))
            ctrs.append(self.bbox_ctrness(feat).permute(0, 2, 3, 1).reshape(n, h * w, 1))
        return torch.cat(regs, dim=1), torch.cat(ctrs, dim=1)


class ClsHead(nn.Module):
    """Pooled backbone features -> classes. ``hidden``: width of a 1x1 conv + GroupNorm + ReLU before
    the pooling, or None for none (a linear classifier on the pooled features).

    The hidden layer is what kept fine-grained pairs from being learned (issue 10, docs/recipe.md):
    two car models that differ by a rear spoiler were told apart at 0.975 alone but merged into one
    class (0.49) as soon as a second pair was in the data; with the linear head, 0.975 with both."""

    def __init__(self, cin: int, hidden: int | None, num_classes: int, dropout: float):
        super().__init__()
        self.proj = nn.Identity() if hidden is None else _conv_gn_relu(cin, int(hidden), k=1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin if hidden is None else int(hidden), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x).mean(dim=(2, 3))
        return self.fc(self.dropout(x))

    @torch.no_grad()
    def set_prior(self, counts, floor: float = 1e-4) -> None:
        """Start the classifier at the training label prior for every image: zero weights, bias =
        log(frequency), classes that never occur at log(``floor``).

        From a random start the quickest loss the head can win is not discrimination but removing
        its own random logits: pushing ~190 absent classes of a 196-way head down, and flattening
        the logits' spread across images towards the prior. Both pushes run back through the
        head's ReLUs into the shared backbone, faster than any class signal: units die, the
        features flatten and, for some seeds and for many fine-grained classes, the head stalls at
        chance for good (``cls_alive`` / ``cls_spread`` in the training log). Started at the prior,
        there is nothing to remove and the first gradient the features get is the class signal."""
        freq = torch.as_tensor(counts, dtype=torch.float64)
        freq = freq / freq.sum().clamp(min=1)
        self.fc.weight.zero_()
        self.fc.bias.copy_(torch.log(freq.clamp(min=floor)).to(self.fc.bias.dtype))


class SegHead(nn.Module):
    """Semantic FPN: every pyramid level -> conv, upsampled to stride 4 and summed, fused, classified;
    logits upsampled to the input size."""

    def __init__(self, cin: int, mid: int, num_classes: int, levels: int = 4):
        super().__init__()
        self.lateral = nn.ModuleList(_conv_gn_relu(cin, mid) for _ in range(levels))
        self.fuse = _conv_gn_relu(mid, mid)
        self.classifier = nn.Conv2d(mid, num_classes, 1)

    def forward(self, pyramid: list[Tensor], size: tuple[int, int]) -> Tensor:
        base = pyramid[0].shape[-2:]
        y = self.lateral[0](pyramid[0])
        for lat, p in zip(self.lateral[1:], pyramid[1:]):
            y = y + F.interpolate(lat(p), size=base, mode="bilinear", align_corners=False)
        logits = self.classifier(self.fuse(y))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class AllInOneModel(nn.Module):
    def __init__(self, cfg: Mapping, num_classes: dict[str, int]):
        """``cfg``: the ``allinone.model`` settings (every key; kept as a plain dict in ``self.cfg``)."""
        super().__init__()
        cfg = plain(cfg)
        self.cfg = cfg
        self.num_classes = dict(num_classes)
        self.backbone = build_backbone(cfg["backbone"], cfg["pretrained"], cfg["freeze"], cfg["return_nodes"],
                                       fuse_bn=bool(cfg["fuse_bn"]))
        self.register_buffer("pixel_mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg["std"]).view(1, 3, 1, 1) * 255.0, persistent=False)
        c = int(cfg["fpn_channels"])
        self.fpn = FeaturePyramidNetwork(list(self.backbone.channels), c)
        self.det_strides = [int(s) for s in cfg["det_strides"]]
        bad = [s for s in self.det_strides if s not in STRIDES]
        if bad or self.det_strides != sorted(self.det_strides):
            raise ValueError(f"det_strides {self.det_strides}: ascending values among {STRIDES}")
        self.cls_head = ClsHead(self.backbone.channels[-1], cfg["cls_hidden"], num_classes["cls"], cfg["cls_dropout"])
        norm = partial(nn.GroupNorm, _groups(c))
        self.det_cls = FCOSClassificationHead(c, 1, num_classes["det"], int(cfg["det_head_convs"]), norm_layer=norm)
        self.det_reg = BoxHead(c, int(cfg["det_head_convs"]), norm, cfg["det_box_activation"])
        self.seg_head = SegHead(c, int(cfg["seg_channels"]), num_classes["seg"])
        # second look at detections: zoomed-in patches -> detection classes + background
        self.refine_head = (
            ClsHead(self.backbone.channels[-1], cfg["refine_hidden"], num_classes["det"] + 1, 0.0)
            if cfg["det_refine"] else None
        )
        self.size_divisor = max(STRIDES)
        # per-class weights of the segmentation loss (training only; set by the training loop)
        self.register_buffer("seg_class_weights", torch.ones(num_classes["seg"]), persistent=False)

    def set_class_priors(self, counts: dict) -> None:
        """Start the softmax heads at the training label frequencies (see :meth:`ClsHead.set_prior`)."""
        self.cls_head.set_prior(counts["cls"])
        if self.refine_head is not None:
            self.refine_head.set_prior(counts["refine"])

    # ------------------------------------------------------------------ pieces
    def normalize(self, images: Tensor) -> Tensor:
        x = (images.to(self.pixel_mean.dtype) - self.pixel_mean) / self.pixel_std
        return x.contiguous(memory_format=torch.channels_last)

    def pyramid(self, feats: list[Tensor]) -> list[Tensor]:
        """P2..P5 from the backbone's C2..C5."""
        out = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))
        return list(out.values())

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters that every task's gradient flows into (backbone and pyramid)."""
        return [p for p in list(self.backbone.parameters()) + list(self.fpn.parameters()) if p.requires_grad]

    def det_raw(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, list[int]]:
        """FCOS outputs on a normalised batch: class logits, box regression, centre-ness, points."""
        pyr = self.pyramid(self.backbone(x))
        levels = [pyr[STRIDES.index(s)] for s in self.det_strides]
        cls_logits = self.det_cls(levels)
        bbox_reg, ctrness = self.det_reg(levels)
        shapes = [tuple(f.shape[-2:]) for f in levels]
        anchors = make_points(shapes, self.det_strides, x.device)
        return cls_logits, bbox_reg, ctrness, anchors, [h * w for h, w in shapes]

    def refine_logits(self, x: Tensor, boxes: list[Tensor]) -> Tensor:
        """Logits (detection classes + background) of zoomed-in patches of ``x`` around ``boxes``."""
        size = int(self.cfg["refine_size"])
        patches = extract_patches(x, boxes, size, float(self.cfg["refine_context"]))
        return self.refine_head(self.backbone(patches.contiguous(memory_format=torch.channels_last))[-1]).float()

    def refine_loss(self, x: Tensor, raw, targets: list[dict[str, Tensor]]) -> Tensor:
        background = self.num_classes["det"]
        sizes = [tuple(x.shape[-2:])] * x.shape[0]
        mined = propose(*raw, sizes, max_boxes=int(self.cfg["refine_proposals"]), score_thresh=0.0)
        boxes, labels = [], []
        for t, (pb, _) in zip(targets, mined):
            b = [t["refine_boxes"].to(x.device)] if "refine_boxes" in t else []
            lab = [t["refine_labels"].to(x.device)] if "refine_labels" in t else []
            b.append(pb)
            lab.append(label_proposals(pb, t["boxes"], t["labels"], background))
            boxes.append(torch.cat(b))
            labels.append(torch.cat(lab))
        logits = self.refine_logits(x, boxes)
        labels_t = torch.cat(labels)
        loss = F.cross_entropy(logits, labels_t, ignore_index=IGNORE, reduction="sum")
        return loss / global_normalizer((labels_t != IGNORE).sum())

    # ------------------------------------------------------------------ forward
    def forward(self, task: str, images: Tensor, targets=None):
        if task == "cls":
            logits = self.cls_head(self.backbone(self.normalize(images))[-1]).float()
            if targets is None:
                return logits
            loss = F.cross_entropy(logits, targets, reduction="sum")
            return {"cls": loss / global_normalizer(torch.tensor(targets.numel(), device=logits.device))}
        if task == "det":
            x = self.normalize(images)
            raw = self.det_raw(x)
            if targets is None:
                return raw
            losses = fcos_losses(*raw, targets, global_normalizer, self.cfg["det_center_radius"])
            if self.refine_head is not None:
                losses["det_refine"] = self.refine_loss(x, raw, targets)
            return losses
        if task == "seg":
            pyr = self.pyramid(self.backbone(self.normalize(images)))
            logits = self.seg_head(pyr, tuple(images.shape[-2:])).float()
            if targets is None:
                return logits
            loss = F.cross_entropy(logits, targets, weight=self.seg_class_weights, ignore_index=255, reduction="sum")
            return {"seg": loss / global_normalizer((targets != 255).sum())}
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")

    @torch.no_grad()
    def detect(self, images: Tensor, image_sizes: list[tuple[int, int]], score_thresh: float = 0.05,
               nms_thresh: float = 0.6, topk_candidates: int = 1000, max_detections: int = 100,
               class_agnostic_nms: bool = False, refine: bool = True, refine_candidates: int = 50,
               refine_topk: int = 3) -> list[dict[str, Tensor]]:
        """Detections per image (boxes xyxy in the pixels of ``images``, scores, label indices).

        With the refinement head (and ``refine``), the ``refine_candidates`` best class-agnostic
        boxes are re-classified from zoomed-in patches; each box yields its ``refine_topk`` most
        likely classes with score sqrt(objectness x p(class)). Otherwise FCOS's own scores are used.
        """
        x = self.normalize(images)
        raw = self.det_raw(x)
        if self.refine_head is None or not refine:
            return decode_detections(*raw, image_sizes, score_thresh=score_thresh, nms_thresh=nms_thresh,
                                     topk_candidates=topk_candidates, max_detections=max_detections,
                                     class_agnostic_nms=class_agnostic_nms)
        proposals = propose(*raw, image_sizes, max_boxes=refine_candidates, score_thresh=score_thresh,
                            nms_thresh=nms_thresh, topk_candidates=topk_candidates)
        background = self.num_classes["det"]
        results = []
        counts = [b.shape[0] for b, _ in proposals]
        if sum(counts):
            probs = torch.softmax(self.refine_logits(x, [b for b, _ in proposals]), dim=1)[:, :background]
        else:
            probs = x.new_zeros((0, background))
        for (boxes, obj), p in zip(proposals, probs.split(counts)):
            k = min(int(refine_topk), background)
            top_p, top_c = p.topk(k, dim=1) if p.numel() else (p.new_zeros((0, k)), p.new_zeros((0, k), dtype=torch.long))
            scores = torch.sqrt(obj[:, None] * top_p).flatten()
            labels = top_c.flatten()
            box_rep = boxes.repeat_interleave(k, dim=0)
            keep = torch.nonzero(scores > score_thresh).flatten()
            keep = keep[scores[keep].argsort(descending=True)][:max_detections]
            results.append({"boxes": box_rep[keep], "scores": scores[keep], "labels": labels[keep]})
        return results
