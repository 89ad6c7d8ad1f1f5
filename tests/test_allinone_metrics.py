"""Metrics of the AllInOne track on hand-made cases."""

import numpy as np
import pytest

from trafficfm.allinone.evaluate import (
    coco_map50,
    confusion_matrix,
    iou_from_confusion,
    per_class_accuracy,
    top1_accuracy,
)


def test_top1():
    assert top1_accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    table = per_class_accuracy([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b", "c"])
    assert list(table["correct"]) == [1, 2, 0]
    assert table["accuracy"][1] == pytest.approx(2 / 3)
    assert np.isnan(table["accuracy"][2])


def test_miou_with_ignore_and_empty_classes():
    target = np.array([[0, 0, 1, 255], [1, 1, 255, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 2], [1, 1, 0, 0]], dtype=np.uint8)
    cm = confusion_matrix(pred, target, num_classes=4)
    # ignored pixels (255) count nowhere, whatever is predicted there
    assert cm.sum() == 5
    iou = iou_from_confusion(cm)
    # class 0: tp 1, gt 2, pred 1 -> 1/2; class 1: tp 3, gt 3, pred 4 -> 3/4
    assert iou[0] == pytest.approx(0.5)
    assert iou[1] == pytest.approx(0.75)
    # classes 2 and 3 are absent from ground truth and (non-ignored) predictions: IoU 0, as PaddleSeg
    assert iou[2] == 0 and iou[3] == 0
    assert iou.mean() == pytest.approx((0.5 + 0.75) / 4)


def test_miou_rejects_bad_labels():
    with pytest.raises(ValueError, match="label value 7"):
        confusion_matrix(np.zeros((2, 2), np.uint8), np.full((2, 2), 7, np.uint8), num_classes=4)


def _gt():
    cats = [{"id": i, "name": f"c{i}"} for i in range(3)]
    images = [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100},
              {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100}]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 0, "bbox": [10, 10, 12, 12], "area": 144, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [50, 40, 8, 9], "area": 72, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 0, "bbox": [70, 70, 20, 20], "area": 400, "iscrowd": 0},
    ]
    return {"images": images, "annotations": anns, "categories": cats}


def test_map50_perfect_is_one():
    gt = _gt()
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
               for a in gt["annotations"]]
    value, table = coco_map50(gt, results)
    assert value == pytest.approx(1.0)
    assert table.set_index("category_id")["ap50"][0] == pytest.approx(1.0)
    assert np.isnan(table.set_index("category_id")["ap50"][1])  # no ground truth: left out


def test_map50_partial_and_empty():
    gt = _gt()
    # category 0 found twice (one box shifted but IoU > 0.5), category 2 missed, one false positive
    results = [
        {"image_id": 1, "category_id": 0, "bbox": [11, 11, 12, 12], "score": 0.9},
        {"image_id": 2, "category_id": 0, "bbox": [70, 70, 20, 20], "score": 0.8},
        {"image_id": 2, "category_id": 2, "bbox": [0, 0, 10, 10], "score": 0.7},
    ]
    value, _ = coco_map50(gt, results)
    assert value == pytest.approx(0.5, abs=1e-6)  # mean of AP 1.0 (cat 0) and 0.0 (cat 2)
    assert coco_map50(gt, [])[0] == 0.0
