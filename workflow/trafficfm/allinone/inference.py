"""Inference of the three tasks in original image pixels (shared by evaluation, prediction and the
periodic validation during training).

Detection runs on the whole image at native resolution (optionally rescaled by ``scale``), or, with
``tile`` set, on overlapping tiles (:func:`merge_tiles`): the way to keep signs of a few pixels
visible in 2048 x 2048 images without resizing them away. Memory then depends on the tile, not on
the image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.ops import batched_nms

from ..device import autocast
from .datasets import read_rgb, to_tensor
from .model import AllInOneModel
from .transforms import cls_eval, pad_to_multiple

def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[AllInOneModel, dict]:
    """Rebuild the model saved by training (``model.pt``) without fetching any pretrained weights."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    # models saved before det_box_activation existed were trained with torchvision's relu
    model = AllInOneModel({"det_box_activation": "relu", **blob["model_cfg"], "pretrained": None}, blob["num_classes"])
    model.load_state_dict(blob["state_dict"])
    model.to(device).to(memory_format=torch.channels_last).eval()
    return model, blob


def _batch_tensor(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    return torch.stack([to_tensor(im) for im in images]).to(device)


# ------------------------------------------------------------------------------------ classification
@torch.inference_mode()
def classify(model: AllInOneModel, paths: list[str], size: int, device: torch.device, cfg: Mapping,
             precision: str, with_prob: bool = False):
    """Predicted class index per image; with ``with_prob``, also the (images, classes) probabilities.
    ``cfg``: the ``allinone.inference`` settings; of them ``batch_size`` (images per pass),
    ``cls_flip`` (average the probabilities of each image and its mirror: training mirrors cars too)
    and ``cls_scales`` (also average over the image resized to ``size`` x each factor)."""
    batch_size, flip = int(cfg["batch_size"]), bool(cfg["cls_flip"])
    sides = [max(1, round(size * float(s))) for s in cfg["cls_scales"]]
    preds, probs = [], []
    for i in range(0, len(paths), batch_size):
        originals = [read_rgb(p) for p in paths[i : i + batch_size]]
        prob = 0.0
        for side in sides:
            x = _batch_tensor([cls_eval(im, side) for im in originals], device)
            with autocast(device, precision):
                prob = prob + model("cls", x).float().softmax(1)
                if flip:
                    prob = prob + model("cls", x.flip(-1)).float().softmax(1)
        prob = prob / (len(sides) * (2 if flip else 1))
        preds.append(prob.argmax(1).cpu().numpy())
        if with_prob:
            probs.append(prob.cpu().numpy())
    labels = np.concatenate(preds) if preds else np.zeros((0,), dtype=np.int64)
    if not with_prob:
        return labels
    return labels, (np.concatenate(probs) if probs else np.zeros((0, model.num_classes["cls"]), np.float32))


# ------------------------------------------------------------------------------------------- detection
def _tiles(h: int, w: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        step = tile - overlap
        k = math.ceil((n - tile) / step) + 1
        return sorted({min(i * step, n - tile) for i in range(k)})

    return [(y, x) for y in starts(h) for x in starts(w)]


@torch.inference_mode()
def detect_image(model: AllInOneModel, img: np.ndarray, device: torch.device, cfg: Mapping,
                 precision: str) -> dict[str, np.ndarray]:
    """Boxes (xyxy, original pixels), scores and label indices of one RGB image (``cfg``: the
    ``allinone.inference`` settings; the refinement head is used when the model has one)."""
    h0, w0 = img.shape[:2]
    scale = float(cfg["det_scale"])
    if scale != 1.0:
        img = cv2.resize(img, (max(1, round(w0 * scale)), max(1, round(h0 * scale))), interpolation=cv2.INTER_LINEAR)
    h, w = img.shape[:2]
    kw = dict(
        score_thresh=cfg["det_score_thresh"], nms_thresh=cfg["det_nms_thresh"],
        topk_candidates=cfg["det_topk_candidates"], max_detections=cfg["det_max_per_image"],
        class_agnostic_nms=bool(cfg["det_class_agnostic_nms"]),
        refine_candidates=int(cfg["det_refine_candidates"]), refine_topk=int(cfg["det_refine_topk"]),
    )
    tile = cfg["det_tile"]
    div = int(cfg["pad_divisor"])
    if not tile or (h <= tile and w <= tile):
        x = _batch_tensor([pad_to_multiple(img, div)], device)
        with autocast(device, precision):
            det = model.detect(x, [(h, w)], **kw)[0]
        boxes, scores, labels = det["boxes"], det["scores"], det["labels"]
    else:
        tile = int(tile)
        origins = _tiles(h, w, tile, int(cfg["det_tile_overlap"]))
        crops, sizes = [], []
        for y, x in origins:
            crop = img[y : y + tile, x : x + tile]
            sizes.append(crop.shape[:2])
            crops.append(np.pad(crop, ((0, tile - crop.shape[0]), (0, tile - crop.shape[1]), (0, 0))))
        results = []
        bs = max(1, int(cfg["batch_size"]) // 4)
        for i in range(0, len(crops), bs):
            with autocast(device, precision):
                results += model.detect(_batch_tensor(crops[i : i + bs], device), sizes[i : i + bs], **kw)
        boxes, scores, labels = merge_tiles(results, origins, sizes, (h, w), cfg)
    boxes = boxes.float().cpu().numpy() / scale
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w0)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h0)
    # A box clipped to (or decoded as) a sliver would round to a zero side in the results (0.01 px).
    keep = np.flatnonzero(np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_PX)
    return {"boxes": boxes[keep], "scores": scores.float().cpu().numpy()[keep], "labels": labels.cpu().numpy()[keep]}


MIN_BOX_PX = 0.01  # shortest box side kept, in original pixels: the precision of coco_results
CUT_MARGIN_PX = 2.0  # a box edge this close to an inner tile edge is taken as cut by it
COVERED = 0.5  # share of a cut box's area inside another tile's box that marks it as a duplicate


def merge_tiles(results: list[dict], origins: list[tuple[int, int]], sizes: list[tuple[int, int]],
                image_hw: tuple[int, int], cfg: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Detections of overlapping tiles -> one set for the image (boxes in image pixels).

    A sign on a tile border is seen whole by one tile and cut by the other, and the cut box can
    overlap the whole one too little for NMS to see the duplicate (a sign cut in half has IoU 0.5).
    So a box touching an inner tile edge is dropped when a box of the same class (any class with
    class-agnostic NMS) from another tile, not cut itself, covers at least half of it; then NMS runs
    across tiles (a sign inside the overlap is found whole by both). Signs smaller than the overlap
    always lie whole in some tile."""
    h, w = image_hw
    agnostic = bool(cfg["det_class_agnostic_nms"])
    boxes, scores, labels, tile_ids, cut = [], [], [], [], []
    for t, ((y, x), (th, tw), r) in enumerate(zip(origins, sizes, results)):
        b = r["boxes"].float()
        inner = torch.tensor([x > 0, y > 0, x + tw < w, y + th < h])
        near = torch.stack([b[:, 0] < CUT_MARGIN_PX, b[:, 1] < CUT_MARGIN_PX,
                            b[:, 2] > tw - CUT_MARGIN_PX, b[:, 3] > th - CUT_MARGIN_PX], 1)
        cut.append((near & inner.to(b.device)).any(1))
        boxes.append(b + torch.tensor([x, y, x, y], dtype=b.dtype, device=b.device))
        scores.append(r["scores"])
        labels.append(r["labels"])
        tile_ids.append(torch.full_like(r["labels"], t))
    boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
    tile_ids, cut = torch.cat(tile_ids), torch.cat(cut)
    groups = torch.zeros_like(labels) if agnostic else labels
    if cut.any():
        lt = torch.maximum(boxes[cut, None, :2], boxes[None, :, :2])
        rb = torch.minimum(boxes[cut, None, 2:], boxes[None, :, 2:])
        inter = (rb - lt).clamp(min=0).prod(2)
        area = (boxes[cut, 2:] - boxes[cut, :2]).clamp(min=1e-6).prod(1)
        other = (groups[cut, None] == groups[None]) & (tile_ids[cut, None] != tile_ids[None]) & ~cut[None]
        duplicate = ((inter / area[:, None] >= COVERED) & other).any(1)
        drop = torch.zeros_like(cut)
        drop[cut.nonzero().flatten()[duplicate]] = True
        boxes, scores, labels, groups = boxes[~drop], scores[~drop], labels[~drop], groups[~drop]
    keep = batched_nms(boxes, scores, groups, cfg["det_nms_thresh"])[: cfg["det_max_per_image"]]
    return boxes[keep], scores[keep], labels[keep]


def coco_results(image_id: int, det: dict[str, np.ndarray], category_ids: list[int]) -> list[dict]:
    """COCO result records (``bbox`` = [x, y, w, h], rounded to 0.01 px) of one image; boxes that
    round to no width or height (a barely trained model's, or clipped at the border) are dropped,
    as the organisers' format rejects them."""
    out = []
    for (x1, y1, x2, y2), s, lab in zip(det["boxes"], det["scores"], det["labels"]):
        bbox = [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2), round(float(y2 - y1), 2)]
        if bbox[2] <= 0 or bbox[3] <= 0:
            continue
        out.append({"image_id": int(image_id), "category_id": int(category_ids[int(lab)]), "bbox": bbox,
                    "score": round(float(s), 5)})
    return out


# ---------------------------------------------------------------------------------------- segmentation
@torch.inference_mode()
def segment_images(model: AllInOneModel, imgs: list[np.ndarray], device: torch.device, cfg: Mapping,
                   precision: str, with_prob: bool = False) -> list:
    """Label map (uint8, original size) per RGB image; images of equal size share a forward pass.
    With ``with_prob``: (label map, (classes, H, W) float32 probabilities) per image."""
    scale, div = float(cfg["seg_scale"]), int(cfg["pad_divisor"])
    out: list[np.ndarray | None] = [None] * len(imgs)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(imgs):
        groups.setdefault(im.shape[:2], []).append(i)
    for (h0, w0), idxs in groups.items():
        h, w = (max(1, round(h0 * scale)), max(1, round(w0 * scale))) if scale != 1.0 else (h0, w0)
        batch = []
        for i in idxs:
            im = imgs[i] if scale == 1.0 else cv2.resize(imgs[i], (w, h), interpolation=cv2.INTER_LINEAR)
            batch.append(pad_to_multiple(im, div))
        x = _batch_tensor(batch, device)
        with autocast(device, precision):
            logits = model("seg", x)[:, :, :h, :w].float().softmax(1)
            if cfg["seg_flip"]:  # average with the mirrored image's prediction (streets are mirror-symmetric)
                logits += model("seg", x.flip(-1)).flip(-1)[:, :, :h, :w].float().softmax(1)
        if scale != 1.0:
            logits = torch.nn.functional.interpolate(logits, size=(h0, w0), mode="bilinear", align_corners=False)
        pred = logits.argmax(1).to(torch.uint8).cpu().numpy()
        if with_prob:
            prob = (logits / (2.0 if cfg["seg_flip"] else 1.0)).cpu().numpy()
        for j, i in enumerate(idxs):
            out[i] = (pred[j], prob[j]) if with_prob else pred[j]
    return out  # type: ignore[return-value]


def segment(model: AllInOneModel, paths: list[str], device: torch.device, cfg: Mapping, precision: str,
            with_prob: bool = False):
    """Yield (index, label map) for each image path, ``batch_size`` images at a time (with
    ``with_prob``: (index, (label map, probabilities)))."""
    bs = int(cfg["batch_size"])
    for i in range(0, len(paths), bs):
        imgs = [read_rgb(p) for p in paths[i : i + bs]]
        for j, pred in enumerate(segment_images(model, imgs, device, cfg, precision, with_prob)):
            yield i + j, pred
