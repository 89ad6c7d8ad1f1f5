"""Evaluation and prediction outputs: files, columns, ids and pixel frames as the data contract says."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from trafficfm.allinone.evaluate import evaluate, validate  # noqa: E402
from trafficfm.allinone.inference import _tiles, detect_image, load_model  # noqa: E402
from trafficfm.allinone.predict import predict  # noqa: E402
from tiny_settings import tiny_allinone
from trafficfm.allinone.synthetic import make_synthetic_allinone  # noqa: E402
from trafficfm.allinone.train import train  # noqa: E402
from trafficfm.data.canonical import Dataset  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("allinone_predict")
    data = make_synthetic_allinone(base / "data", base / "root")
    train(data, base / "model.pt", base / "ckpt", tiny_allinone(steps=2))
    return data, base / "model.pt", base


def test_predictions_follow_the_contract(trained):
    data, model, base = trained
    out = base / "predictions"
    cfg = tiny_allinone().replace({"inference": {"det_score_thresh": 0.0, "det_max_per_image": 7}})
    summary = predict(model, data, out, "test", cfg)
    ds = Dataset.open(data)
    # classification: name + label per test image, in table order
    cls = pd.read_csv(out / "cls_test.csv")
    assert list(cls.columns) == ["name", "label"]
    assert list(cls["name"]) == [p.split("/")[-1] for p in ds.table("cls_test")["image"]]
    assert cls["label"].between(0, 2).all()
    # detection: COCO results, ids of det_test.json, bounded count, boxes inside the original image
    dets = json.loads((out / "det_test.json").read_text())
    images = {im["id"]: im for im in ds.coco("test")["images"]}
    assert dets and summary["det"]["boxes"] == len(dets)
    per_image = {}
    for d in dets:
        assert set(d) == {"image_id", "category_id", "bbox", "score"}
        im = images[d["image_id"]]
        x, y, w, h = d["bbox"]
        assert 0 <= x and 0 <= y and w > 0 and h > 0
        assert x + w <= im["width"] + 1e-6 and y + h <= im["height"] + 1e-6
        assert 0 <= d["category_id"] <= 44 and 0 <= d["score"] <= 1
        per_image[d["image_id"]] = per_image.get(d["image_id"], 0) + 1
    assert max(per_image.values()) <= 7
    # segmentation: one single-channel PNG per test image, original size, class ids only
    seg = ds.table("seg_test")
    files = sorted(p.name for p in (out / "seg_test").iterdir())
    assert files == sorted(p.split("/")[-1].replace(".jpg", ".png") for p in seg["image"])
    for _, row in seg.iterrows():
        label = cv2.imread(str(out / "seg_test" / row["image"].split("/")[-1].replace(".jpg", ".png")),
                           cv2.IMREAD_UNCHANGED)
        assert label.shape == (row["height"], row["width"]) and label.dtype == np.uint8
        assert label.max() < 19
    # no temporary folders left behind
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_evaluation_writes_metrics_and_tables(trained):
    data, model, base = trained
    cfg = tiny_allinone()
    predict(model, data, base / "pred_val", "val", cfg)
    metrics = evaluate(base / "pred_val", data, base / "val_metrics.json", base)
    # the prediction files score exactly as the in-memory validation used during training
    loaded, blob = load_model(model, "cpu")
    in_memory, _ = validate(loaded, blob, Dataset.open(data), "val", torch.device("cpu"), cfg.inference, None,
                            cfg.precision)
    assert metrics == pytest.approx(in_memory)
    saved = json.loads((base / "val_metrics.json").read_text())
    assert saved == metrics and set(saved) == {"top1", "map50", "miou", "score"}
    assert all(0.0 <= v <= 1.0 for v in saved.values())
    assert saved["score"] == pytest.approx((saved["top1"] + saved["map50"] + saved["miou"]) / 3)
    seg = pd.read_csv(base / "val_seg_per_class.csv")
    assert len(seg) == 19 and saved["miou"] == pytest.approx(seg["iou"].mean())
    assert len(pd.read_csv(base / "val_cls_per_class.csv")) == 3
    assert len(pd.read_csv(base / "val_det_per_class.csv")) == 45


def test_evaluation_names_a_missing_prediction(trained, tmp_path):
    import shutil

    data, model, base = trained
    if not (base / "pred_val").exists():
        predict(model, data, base / "pred_val", "val", tiny_allinone())
    broken = tmp_path / "pred"
    shutil.copytree(base / "pred_val", broken)
    victim = sorted((broken / "seg_val").iterdir())[0]
    victim.unlink()
    with pytest.raises(ValueError, match=victim.name):
        evaluate(broken, data, tmp_path / "m.json", tmp_path)
    assert not (tmp_path / "m.json").exists()


def test_tiled_detection_matches_frames(trained):
    _, model_path, _ = trained
    model, _ = load_model(model_path, "cpu")
    assert _tiles(100, 250, 128, 32) == [(0, 0), (0, 96), (0, 122)]
    img = np.random.default_rng(0).integers(0, 255, (150, 260, 3), dtype=np.uint8)
    cfg = tiny_allinone().inference.replace({"det_score_thresh": 0.0, "det_max_per_image": 30})
    whole = detect_image(model, img, torch.device("cpu"), cfg, "fp32")
    tiled = detect_image(model, img, torch.device("cpu"), cfg.replace({"det_tile": 128, "det_tile_overlap": 32}), "fp32")
    for det in (whole, tiled):
        assert len(det["boxes"]) <= 30
        assert (det["boxes"][:, [0, 2]] <= 260).all() and (det["boxes"][:, [1, 3]] <= 150).all()
    scaled = detect_image(model, img, torch.device("cpu"), cfg.replace({"det_scale": 1.5}), "fp32")
    assert (scaled["boxes"][:, [0, 2]] <= 260).all() and (scaled["boxes"][:, [1, 3]] <= 150).all()


def test_flip_averaging_is_mirror_equivariant(trained):
    """seg_flip averages the image's and its mirror's prediction: mirroring the input then mirrors
    the label map exactly (width a multiple of the padding, so no padding breaks the symmetry)."""
    from trafficfm.allinone.inference import segment_images

    _, model_path, _ = trained
    model, _ = load_model(model_path, "cpu")
    torch.manual_seed(0)  # a briefly trained model predicts one class everywhere: make it vary
    torch.nn.init.normal_(model.seg_head.classifier.weight, std=3.0)
    img = np.random.default_rng(1).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    infer = tiny_allinone().inference
    assert len(np.unique(segment_images(model, [img], torch.device("cpu"), infer, "fp32")[0])) > 1
    flip = infer.replace({"seg_flip": True, "seg_scale": 1.0, "pad_divisor": 32})  # no resize: exact mirror symmetry
    plain, mirrored = segment_images(model, [img, np.ascontiguousarray(img[:, ::-1])], torch.device("cpu"), flip, "fp32")
    assert np.array_equal(plain[:, ::-1], mirrored)
    once_cfg = infer.replace({"seg_flip": False, "seg_scale": 1.0})
    once, = segment_images(model, [img], torch.device("cpu"), once_cfg, "fp32")
    once_mirrored, = segment_images(model, [np.ascontiguousarray(img[:, ::-1])], torch.device("cpu"), once_cfg, "fp32")
    assert not np.array_equal(once[:, ::-1], once_mirrored)  # without it the model is not symmetric

    # At the default settings (scale 1.15, padding on the right only) exact symmetry cannot hold: the
    # padding is uneven unless the scaled width is a multiple of 32, and the resize rounds. The nearest
    # property: for such a width (1.15 x 640 = 23 x 32), the mirrored input's label map is the mirror
    # of the label map on nearly every pixel (measured 99.95 %), far more than without flip averaging.
    defaults = infer.replace({"seg_flip": True})
    assert defaults["seg_scale"] == 1.15 and defaults["pad_divisor"] == 32
    wide = np.random.default_rng(2).integers(0, 255, (64, 640, 3), dtype=np.uint8)
    pair = [wide, np.ascontiguousarray(wide[:, ::-1])]
    plain, mirrored = segment_images(model, pair, torch.device("cpu"), defaults, "fp32")
    once, once_mirrored = segment_images(model, pair, torch.device("cpu"), defaults.replace({"seg_flip": False}), "fp32")
    agree, agree_once = float(np.mean(plain[:, ::-1] == mirrored)), float(np.mean(once[:, ::-1] == once_mirrored))
    assert agree >= 0.995 and agree_once < agree - 0.1, (agree, agree_once)


def test_cls_flip_averages_the_image_and_its_mirror(trained, tmp_path):
    """cls_flip: a car and its mirror get the same probabilities (each is averaged with the other),
    which a single pass does not give; the predicted label is the averaged probabilities' argmax."""
    from trafficfm.allinone.inference import classify

    _, model_path, _ = trained
    model, _ = load_model(model_path, "cpu")
    torch.manual_seed(0)  # the prior-started head is flat after two steps: give it something to say
    torch.nn.init.normal_(model.cls_head.fc.weight, std=3.0)
    img = np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    paths = [tmp_path / "car.png", tmp_path / "mirrored.png"]
    for p, im in zip(paths, (img, img[:, ::-1])):
        cv2.imwrite(str(p), np.ascontiguousarray(im[:, :, ::-1]))
    one = {"batch_size": 8, "cls_flip": False, "cls_scales": [1.0]}
    args = ([str(p) for p in paths], 64, torch.device("cpu"))
    _, once = classify(model, *args, one, "fp32", with_prob=True)
    labels, both = classify(model, *args, {**one, "cls_flip": True}, "fp32", with_prob=True)
    assert np.abs(once[0] - once[1]).max() > 1e-3  # the model alone is not mirror-symmetric
    np.testing.assert_allclose(both[0], both[1], atol=1e-6)
    np.testing.assert_allclose(both[0], (once[0] + once[1]) / 2, atol=1e-6)
    assert list(labels) == [int(both[0].argmax())] * 2


def test_cls_scales_average_the_passes_at_each_side(trained, tmp_path):
    """cls_scales: the probabilities are the mean over the sides size x factor (and their mirrors),
    so a factor of 1.5 on 64 px adds the 96 px pass, and the label is that mean's argmax."""
    from trafficfm.allinone.inference import classify

    _, model_path, _ = trained
    model, _ = load_model(model_path, "cpu")
    torch.manual_seed(0)
    torch.nn.init.normal_(model.cls_head.fc.weight, std=3.0)
    rng = np.random.default_rng(4)
    paths = [tmp_path / f"car{i}.png" for i in range(3)]
    for p in paths:
        cv2.imwrite(str(p), rng.integers(0, 255, (50, 90, 3), dtype=np.uint8))
    one = {"batch_size": 2, "cls_flip": True, "cls_scales": [1.0]}
    args = ([str(p) for p in paths], 64, torch.device("cpu"))
    _, at64 = classify(model, *args, one, "fp32", with_prob=True)
    _, at96 = classify(model, [str(p) for p in paths], 96, torch.device("cpu"), one, "fp32", with_prob=True)
    labels, both = classify(model, *args, {**one, "cls_scales": [1.0, 1.5]}, "fp32", with_prob=True)
    assert np.abs(at64 - at96).max() > 1e-3  # the side changes what the model says
    np.testing.assert_allclose(both, (at64 + at96) / 2, atol=1e-6)
    np.testing.assert_array_equal(labels, both.argmax(1))


def test_coco_results_drop_boxes_without_width_or_height():
    import numpy as np

    from trafficfm.allinone.inference import coco_results

    det = {"boxes": np.array([[10.0, 10.0, 20.0, 30.0], [278.671, 300.79, 278.672, 301.34], [5.0, 5.0, 9.0, 5.001]]),
           "scores": np.array([0.9, 0.8, 0.7]), "labels": np.array([0, 1, 2])}
    out = coco_results(7, det, [3, 4, 5])
    assert [r["bbox"] for r in out] == [[10.0, 10.0, 10.0, 20.0]]  # the other two round to w or h 0
    assert out[0]["category_id"] == 3 and out[0]["image_id"] == 7
