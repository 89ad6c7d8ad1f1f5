"""Shapes, assignment of tiny boxes, and a loss that goes down, on the tiny backbone."""


import pytest
import torch

from trafficfm.allinone.backbones import build_backbone, load_matching, read_state_dict  # noqa: E402
from trafficfm.allinone.detection import assign, decode_detections, make_points  # noqa: E402
from trafficfm.config import load
from trafficfm.allinone.model import AllInOneModel  # noqa: E402

NUM = {"cls": 3, "det": 45, "seg": 19}
# the default model settings with the tiny backbone (random GroupNorm CNN) and narrow heads
CFG = load(overrides=[{"allinone": {"model": {"backbone": "tiny", "pretrained": None, "freeze": [], "fpn_channels": 32,
                                              "cls_hidden": 32, "seg_channels": 32}}}]).allinone.model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return AllInOneModel(CFG, NUM)


def test_output_shapes(model):
    model.eval()
    with torch.no_grad():
        assert model("cls", torch.rand(2, 3, 48, 64) * 255).shape == (2, 3)
        assert model("seg", torch.rand(2, 3, 64, 96) * 255).shape == (2, 19, 64, 96)
        cls_logits, reg, ctr, anchors, per_level = model("det", torch.rand(2, 3, 64, 96) * 255)
    locations = sum(64 // s * 96 // s for s in (4, 8, 16))
    assert per_level == [16 * 24, 8 * 12, 4 * 6]
    assert cls_logits.shape == (2, locations, 45)
    assert reg.shape == (2, locations, 4) and ctr.shape == (2, locations, 1)
    assert anchors.shape == (locations, 4)
    dets = model.detect(torch.rand(1, 3, 64, 96) * 255, [(60, 90)], score_thresh=0.0, max_detections=7)
    assert dets[0]["boxes"].shape[0] <= 7
    assert (dets[0]["boxes"][:, 2] <= 90).all() and (dets[0]["boxes"][:, 3] <= 60).all()


def test_points_and_tiny_boxes_get_a_location():
    anchors = make_points([(8, 8), (4, 4)], [4, 8], "cpu")
    assert anchors[0].tolist() == [0.0, 0.0, 4.0, 4.0]  # centre (2, 2), side = stride
    # a 3 px box between location centres, and a 10 px box: both get positives at stride 4
    gt = torch.tensor([[4.5, 4.5, 5.5, 5.5], [12.0, 12.0, 22.0, 22.0]])
    idx = assign(anchors, [64, 16], gt)
    assert (idx == 0).sum() == 1
    assert (idx == 1).sum() >= 4
    assert (idx[64:] == -1).all()  # small boxes live on the finest level
    assert (assign(anchors, [64, 16], torch.zeros(0, 4)) == -1).all()


def test_decode_respects_limits():
    anchors = make_points([(4, 4)], [8], "cpu")
    logits = torch.full((1, 16, 2), -5.0)
    logits[0, 5, 1] = 5.0
    reg = torch.ones(1, 16, 4)
    ctr = torch.full((1, 16, 1), 5.0)
    out = decode_detections(logits, reg, ctr, anchors, [16], [(32, 32)], score_thresh=0.5)[0]
    assert out["labels"].tolist() == [1]
    # location 5 = row 1, col 1: centre (12, 12); distances 1 * stride
    assert out["boxes"].tolist() == [[4.0, 4.0, 20.0, 20.0]]


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    m = AllInOneModel(CFG, NUM)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    imgs = torch.rand(2, 3, 64, 64) * 255
    targets = {
        "cls": torch.tensor([0, 2]),
        "det": [{"boxes": torch.tensor([[10.0, 10, 22, 22]]), "labels": torch.tensor([3])},
                {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}],
        "seg": torch.randint(0, 19, (2, 64, 64)),
    }
    first, last = {}, {}
    for step in range(12):
        opt.zero_grad()
        total = 0
        for task in ("cls", "det", "seg"):
            losses = m(task, imgs, targets[task])
            value = sum(losses.values())
            total = total + value
            (first if step == 0 else last)[task] = float(value.detach())
        total.backward()
        opt.step()
    for task in first:
        assert last[task] < first[task], (task, first[task], last[task])


def test_backbone_names_and_errors(tmp_path):
    tiny = build_backbone("tiny")
    assert [f.shape[-1] for f in tiny(torch.zeros(1, 3, 64, 64))] == [16, 8, 4, 2]
    with pytest.raises(ValueError, match="expected timm"):
        build_backbone("nope:x")
    with pytest.raises(FileNotFoundError):
        build_backbone("tiny", pretrained=str(tmp_path / "missing.pt"))
    # a saved state dict with other names but the same tensors loads by position
    state = {f"w{i}": v for i, v in enumerate(tiny.state_dict().values())}
    torch.save(state, tmp_path / "tiny.pt")
    other = build_backbone("tiny", pretrained=str(tmp_path / "tiny.pt"))
    assert torch.equal(other.stem[0].weight, tiny.stem[0].weight)
    with pytest.raises(ValueError, match="no parameter matches"):
        build_backbone("tiny", freeze=["nothing"])


def test_efficientnet_lite0_package_weights():
    """The shipped ImageNet weights load into timm's tf_efficientnet_lite0 (by position)."""
    backbone = build_backbone("timm:tf_efficientnet_lite0", "package:efficientnet_lite0", freeze=["conv_stem", "bn1"])
    state = read_state_dict("package:efficientnet_lite0")
    assert torch.equal(backbone.body.conv_stem.weight, state["_conv_stem.weight"])
    assert not backbone.body.conv_stem.weight.requires_grad
    assert backbone.channels == [24, 40, 112, 320]
    feats = backbone(torch.zeros(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]
    with pytest.raises(ValueError, match="do not fit"):
        load_matching(torch.nn.Linear(3, 3), state, "linear")


def test_open_clip_vision_tower(tmp_path):
    """A tiny open_clip ViT config (no weights): maps at strides 4..32 at any input size."""
    import json

    import open_clip

    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "patch_size": 16},
           "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "Tiny-ViT-test.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path)
    backbone = build_backbone("open_clip:Tiny-ViT-test")
    feats = backbone(torch.zeros(1, 3, 96, 128))
    assert [tuple(f.shape[-2:]) for f in feats] == [(24, 32), (12, 16), (6, 8), (3, 4)]


def test_refinement_boxes_and_labels():
    import numpy as np

    from trafficfm.allinone.refine import label_proposals, sample_training_boxes, square_boxes

    sq = square_boxes(torch.tensor([[10.0, 20.0, 14.0, 30.0]]), context=2.0)
    assert sq.tolist() == [[2.0, 15.0, 22.0, 35.0]]  # side 2 x 10, same centre
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    props = torch.tensor([[1.0, 1.0, 10.0, 10.0], [30.0, 30.0, 40.0, 40.0], [0.0, 0.0, 10.0, 25.0]])
    labels = label_proposals(props, gt, torch.tensor([3, 7]), background=45)
    assert labels.tolist() == [3, 45, -100]  # matched, background, ambiguous (IoU 0.4)
    rng = np.random.default_rng(0)
    boxes = np.array([[10, 10, 20, 22], [100, 100, 130, 128]], dtype=np.float32)
    b, lab = sample_training_boxes(boxes, np.array([5, 9]), 128, 4, 45, rng)
    assert b.shape == (4, 4) and sorted(lab[:2].tolist()) == [5, 9] and lab[2:].tolist() == [45, 45]
    b, lab = sample_training_boxes(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), 128, 3, 45, rng)
    assert b.shape == (3, 4) and lab.tolist() == [45, 45, 45]


def test_refined_detection_output(model):
    model.eval()
    with torch.no_grad():
        plain = model.detect(torch.rand(1, 3, 64, 96) * 255, [(64, 96)], score_thresh=0.0, refine=False)
        refined = model.detect(torch.rand(1, 3, 64, 96) * 255, [(64, 96)], score_thresh=0.0, max_detections=9,
                               refine_candidates=5, refine_topk=2)
    assert plain[0]["boxes"].shape[1] == 4
    r = refined[0]
    assert 0 < len(r["scores"]) <= 9 and (r["labels"] < 45).all()
    assert (r["scores"][:-1] >= r["scores"][1:]).all()  # best first


def test_folding_frozen_norms_keeps_the_function():
    torch.manual_seed(0)
    frozen = ["conv_stem", "blocks.0"]
    plain = build_backbone("timm:tf_efficientnet_lite0", "package:efficientnet_lite0", frozen).eval()
    fused = build_backbone("timm:tf_efficientnet_lite0", "package:efficientnet_lite0", frozen, fuse_bn=True).eval()
    state = fused.state_dict()
    assert "body.conv_stem.bias" in state and "body.bn1.running_mean" not in state  # frozen: folded
    assert "body.blocks.1.0.bn1.running_mean" in state  # trainable conv: its norm stays
    assert not any(p.requires_grad for n, p in fused.named_parameters() if n.startswith("body.blocks.0"))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(plain(x), fused(x)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_linear_heads_classify_the_pooled_backbone_features():
    """cls_hidden / refine_hidden null: no hidden layer, the classifier reads the pooled last level
    (the head that learns fine-grained pairs, docs/recipe.md)."""
    cfg = load(overrides=[{"allinone": {"model": {"backbone": "tiny", "pretrained": None, "freeze": [], "fpn_channels": 32,
                                                  "cls_hidden": None, "refine_hidden": None, "seg_channels": 32}}}]).allinone.model
    torch.manual_seed(0)
    m = AllInOneModel(cfg, NUM).eval()
    c = m.backbone.channels[-1]
    assert m.cls_head.fc.in_features == c and m.refine_head.fc.in_features == c
    assert not list(m.cls_head.proj.parameters())
    x = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        pooled = m.backbone(m.normalize(x))[-1].mean(dim=(2, 3))
        torch.testing.assert_close(m("cls", x), m.cls_head.fc(pooled))
    m.set_class_priors({"cls": [1, 3, 0], "refine": [1] * 46})
    with torch.no_grad():
        p = torch.softmax(m("cls", x), dim=1)
    torch.testing.assert_close(p[0], torch.tensor([0.25, 0.75, 0.0]), atol=1e-3, rtol=0)


@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_a_box_side_pushed_below_zero_comes_back_only_with_softplus(activation):
    """The failure of release 3 / seed 1: one regression output negative everywhere. Through a relu
    it gets no gradient and every box stays cut off at its centre on that side; softplus recovers."""
    torch.manual_seed(0)
    m = AllInOneModel({**CFG, "det_box_activation": activation}, NUM)
    with torch.no_grad():  # the left-distance output: below zero at every location
        m.det_reg.bbox_reg.weight[0].zero_()
        m.det_reg.bbox_reg.bias[0] = -3.0
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=0.0)
    imgs = torch.rand(2, 3, 64, 64) * 255
    targets = [{"boxes": torch.tensor([[10.0, 10, 30, 30]]), "labels": torch.tensor([3])},
               {"boxes": torch.tensor([[36.0, 20, 52, 44]]), "labels": torch.tensor([5])}]
    for _ in range(15):
        opt.zero_grad()
        losses = m("det", imgs, targets)
        losses["det_box"].backward()
        opt.step()
    with torch.no_grad():
        _, reg, _, anchors, per_level = m("det", imgs)
        fg = torch.stack([assign(anchors, per_level, t["boxes"]) >= 0 for t in targets])
        left = reg[fg][:, 0]
        assert fg.sum() >= 4
    if activation == "relu":
        assert m.det_reg.bbox_reg.bias[0].item() == -3.0  # not one gradient reached it
        assert (left == 0).all()
    else:
        assert float(left.min()) > 1.0  # open again (softplus(-3) = 0.05 strides; the boxes' sides are 2-3)
