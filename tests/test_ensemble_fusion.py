"""Fusion of ensemble members (trafficfm.ensemble): identical members fuse to the member, the
members' order never matters, detections keep original pixels and category ids, and the compact
soft predictions written by prediction round-trip through the fusion."""

import itertools
import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torchvision.ops import box_iou

from trafficfm.ensemble import soft
from trafficfm.ensemble.allinone import fuse_cls, fuse_det, fuse_predictions, fuse_seg_maps
from trafficfm.ensemble.retrieval import fuse_topk
from trafficfm.retrieval.rank import topk_chunked

pytestmark = pytest.mark.usefixtures("one_thread")


def cls_member(rng, n=20, classes=12, k=4, tmp=None, name="m"):
    prob = rng.dirichlet(np.ones(classes) * 0.3, size=n)
    path = tmp / f"{name}.npz"
    soft.write_cls(path, [f"{i:05d}.jpg" for i in range(n)], prob, k)
    return soft.read_cls(path)


def det_member(rng, images=(3, 8), categories=(7, 42, 101), n=25, size=(2048, 2048)):
    """COCO results with NMS-separated boxes per category (as a member's own output is)."""
    out = []
    for image_id in images:
        for cat in categories:
            kept = []
            while len(kept) < n // len(categories):
                w, h = rng.uniform(8, 120, 2)
                x, y = rng.uniform(0, size[1] - w), rng.uniform(0, size[0] - h)
                box = torch.tensor([[x, y, x + w, y + h]])
                if kept and float(box_iou(torch.cat(kept), box).max()) > 0.5:
                    continue
                kept.append(box)
            for b in kept:
                x1, y1, x2, y2 = b[0].tolist()
                out.append({"image_id": image_id, "category_id": cat,
                            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                            "score": round(float(rng.uniform(0.05, 1.0)), 5)})
    return out


def by_key(records):
    return sorted((r["image_id"], r["category_id"], tuple(r["bbox"]), r["score"]) for r in records)


# ---------------------------------------------------------------------------------- classification
def test_cls_fusion_of_identical_members_is_the_member(tmp_path):
    member = cls_member(np.random.default_rng(0), tmp=tmp_path)
    fused = fuse_cls([member, member, member])
    assert np.array_equal(fused["index"], member["index"])
    assert np.array_equal(fused["prob"].astype(np.float32), member["prob"])
    assert np.array_equal(fused["label"], member["index"][:, 0])


def test_cls_fusion_is_order_independent_and_averages(tmp_path):
    rng = np.random.default_rng(1)
    members = [cls_member(rng, tmp=tmp_path, name=str(i)) for i in range(3)]
    results = [fuse_cls(list(p)) for p in itertools.permutations(members)]
    for r in results[1:]:
        assert np.array_equal(r["prob_full"], results[0]["prob_full"])
        assert np.array_equal(r["label"], results[0]["label"])
    # the mean of the stored top-k probabilities (0 outside a member's top k)
    dense = np.zeros((3, 20, 12))
    for i, m in enumerate(members):
        np.put_along_axis(dense[i], m["index"], m["prob"], axis=1)
    assert np.allclose(results[0]["prob_full"], dense.mean(0))


# --------------------------------------------------------------------------------------- detection
@pytest.mark.parametrize("method", ["wbf", "nms"])
def test_det_fusion_of_identical_members_is_the_member(method):
    member = det_member(np.random.default_rng(2))
    fused = fuse_det([member, member, member], method, iou=0.6, max_per_image=100)
    assert by_key(fused) == by_key(member)


@pytest.mark.parametrize("method", ["wbf", "nms"])
def test_det_fusion_is_order_independent(method):
    rng = np.random.default_rng(3)
    members = [det_member(rng) for _ in range(3)]
    # boxes of two members that overlap with equal scores: which one leads must not depend on the order
    members[1] += [{**r, "bbox": [r["bbox"][0] + 1.0, *r["bbox"][1:]]} for r in members[0][:5]]
    results = [fuse_det(list(p), method, iou=0.55) for p in itertools.permutations(members)]
    for r in results[1:]:
        assert r == results[0]


@pytest.mark.parametrize("method", ["wbf", "nms"])
def test_det_fusion_keeps_original_pixels_and_category_ids(method):
    """Two members see the same sign near the far corner of a 2048 px image: the fused box lies
    there (no normalisation to [0, 1]) and keeps the category id (no remapping to indices)."""
    a = [{"image_id": 17, "category_id": 101, "bbox": [1900.0, 1950.0, 40.0, 30.0], "score": 0.9}]
    b = [{"image_id": 17, "category_id": 101, "bbox": [1904.0, 1952.0, 40.0, 30.0], "score": 0.6},
         {"image_id": 17, "category_id": 7, "bbox": [10.0, 20.0, 12.0, 12.0], "score": 0.5}]
    fused = fuse_det([a, b], method, iou=0.55)
    assert {(r["image_id"], r["category_id"]) for r in fused} == {(17, 101), (17, 7)}
    sign = next(r for r in fused if r["category_id"] == 101)
    if method == "wbf":  # the score-weighted mean box, the mean score
        assert sign["bbox"] == pytest.approx([1900 + 4 * 0.6 / 1.5, 1950 + 2 * 0.6 / 1.5, 40.0, 30.0], abs=0.01)
        assert sign["score"] == pytest.approx(0.75)
    else:  # the best box, the mean over members of their best matching score
        assert sign["bbox"] == [1900.0, 1950.0, 40.0, 30.0]
        assert sign["score"] == pytest.approx(0.75)
    lone = next(r for r in fused if r["category_id"] == 7)
    assert lone["bbox"] == [10.0, 20.0, 12.0, 12.0] and lone["score"] == pytest.approx(0.25)


# ------------------------------------------------------------------------------------ segmentation
def test_seg_fusion_identity_order_and_mean():
    rng = np.random.default_rng(4)
    maps = [soft.quantise(rng.dirichlet(np.ones(5), size=(6, 7)).transpose(2, 0, 1)) for _ in range(3)]
    label, mean = fuse_seg_maps([maps[0]] * 3, with_mean=True)
    assert np.array_equal(mean, maps[0]) and np.array_equal(label, maps[0].argmax(0))
    outs = [fuse_seg_maps(list(p), with_mean=True) for p in itertools.permutations(maps)]
    for lab, m in outs[1:]:
        assert np.array_equal(lab, outs[0][0]) and np.array_equal(m, outs[0][1])
    exact = np.mean([m.astype(np.float64) for m in maps], axis=0)
    assert np.abs(outs[0][1] - exact).max() <= 0.5
    assert np.array_equal(outs[0][0], exact.argmax(0))


# --------------------------------------------------------------------------------------- retrieval
def unit(x):
    return torch.nn.functional.normalize(x, dim=-1)


def test_retrieval_fusion_identity_and_order():
    g = torch.Generator().manual_seed(5)
    members = [(unit(torch.randn(50, 16, generator=g)), unit(torch.randn(300, 16, generator=g))) for _ in range(3)]
    _, plain = topk_chunked(*members[0], k=10)
    _, same = fuse_topk([members[0]] * 3, k=10, chunk=16)
    assert torch.equal(same, plain)
    tops = [fuse_topk(list(p), k=10, chunk=16)[1] for p in itertools.permutations(members)]
    for t in tops[1:]:
        assert torch.equal(t, tops[0])
    # the fused ranking is the mean of per-query standardised similarities
    z = [(q @ gal.T - (q @ gal.T).mean(1, keepdim=True)) / (q @ gal.T).std(1, keepdim=True) for q, gal in members]
    assert torch.equal(tops[0], torch.topk(sum(z) / 3, 10, dim=1).indices)


# ------------------------------------------------------------------------- prediction + fusion files
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tiny_settings import tiny_allinone
    from trafficfm.allinone.synthetic import make_synthetic_allinone
    from trafficfm.allinone.train import train

    base = tmp_path_factory.mktemp("ensemble")
    data = make_synthetic_allinone(base / "data", base / "root")
    train(data, base / "model.pt", base / "ckpt", tiny_allinone(steps=2))
    return data, base / "model.pt", base


def test_soft_predictions_fuse_into_member_predictions(trained, tmp_path):
    from trafficfm.allinone.predict import predict

    data, model, _ = trained
    from tiny_settings import tiny_allinone

    cfg = tiny_allinone().replace({"precision": "fp32", "inference": {"det_score_thresh": 0.0, "det_max_per_image": 20}})
    predict(model, data, tmp_path / "pred", "val", cfg, soft_dir=tmp_path / "soft", soft_top_k=3)
    plain = tmp_path / "plain"
    predict(model, data, plain, "val", cfg)
    # writing soft predictions changes nothing in the member's own predictions
    assert (tmp_path / "pred" / "cls_val.csv").read_text() == (plain / "cls_val.csv").read_text()
    assert (tmp_path / "pred" / "det_val.json").read_text() == (plain / "det_val.json").read_text()
    cls = soft.read_cls(tmp_path / "soft" / "cls.npz")
    assert cls["index"].shape[1] == 3 and cls["prob"].dtype == np.float32
    member = (tmp_path / "pred", tmp_path / "soft")
    fusion = {"det": "wbf", "det_iou": 0.6, "det_max_per_image": 20}
    fuse_predictions([member], tmp_path / "one", "val", fusion)
    fuse_predictions([member, member, member], tmp_path / "three", "val", fusion)
    for name in ("cls_val.csv", "det_val.json"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "three" / name).read_text()
    # the fused labels are the member's (up to float16 / uint8 rounding of near ties)
    assert (pd.read_csv(tmp_path / "one" / "cls_val.csv")["label"]
            == pd.read_csv(plain / "cls_val.csv")["label"]).mean() >= 0.9
    assert by_key(json.loads((tmp_path / "one" / "det_val.json").read_text())) == by_key(
        json.loads((plain / "det_val.json").read_text()))
    for png in sorted((plain / "seg_val").iterdir()):
        one = cv2.imread(str(tmp_path / "one" / "seg_val" / png.name), cv2.IMREAD_UNCHANGED)
        three = cv2.imread(str(tmp_path / "three" / "seg_val" / png.name), cv2.IMREAD_UNCHANGED)
        own = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(one, three) and one.shape == own.shape
        assert (one == own).mean() > 0.9
