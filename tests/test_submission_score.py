"""The local scorer: the organisers' metrics, 1.0 on perfect predictions, hand-computed otherwise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from test_submission_data import write_allinone_dataset, write_allinone_predictions, write_retrieval_dataset
from trafficfm.submission.allinone import build_allinone
from trafficfm.submission.reference import AllInOneReference, RetrievalReference
from trafficfm.submission.score import (NotScorable, mean_iou, score_allinone, score_allinone_file, score_cls,
                                        score_dec, score_retrieval, seg_areas)


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("s")
    truth = write_allinone_dataset(tmp / "data", "val", labelled=True, all_seg_classes=True)
    return tmp, truth, AllInOneReference.from_dataset(tmp / "data", "val")


def _submission(tmp, truth, ref, name, **kwargs):
    p = write_allinone_predictions(tmp / name, truth, "val", **kwargs)
    return json.loads(build_allinone(p["cls"], p["det"], p["seg"], ref).to_json())


def test_perfect_predictions_score_one(val):
    tmp, truth, ref = val
    scores = score_allinone(_submission(tmp, truth, ref, "perfect"), ref)
    assert (scores["cls_top1"], scores["det_map50"], scores["seg_miou"], scores["score"]) == (1.0, 1.0, 1.0, 1.0)
    assert scores["seg_classes_absent"] == []


def test_hand_computed_allinone(val):
    tmp, truth, ref = val
    boxes = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
             for a in truth["coco"]["annotations"]]
    # image 1's only box (category 1) now has a higher-scoring false positive of its category
    boxes.append({"image_id": 1, "category_id": 1, "bbox": [60.0, 50.0, 10.0, 10.0], "score": 0.95})
    scores = score_allinone(_submission(tmp, truth, ref, "hand", cls_wrong=2, det_boxes=boxes), ref)
    assert scores["cls_top1"] == pytest.approx(4 / 6)
    # category 1: gt on images 1, 2, 3; ranking FP(.95), TP, TP, TP -> precision 1/2, 2/3, 3/4 at
    # recall 1/3, 2/3, 1; interpolated (max to the right) it is 3/4 at every recall point; the other
    # categories (4, 7) stay at 1.0
    assert scores["det_map50"] == pytest.approx((0.75 + 1 + 1) / 3)
    assert scores["score"] == pytest.approx((4 / 6 + scores["det_map50"] + 1.0) / 3)


def test_detection_scoring_works_with_pycocotools_that_needs_info(monkeypatch):
    """pycocotools 2.0.9 and 2.0.10 read ``dataset["info"]`` in ``loadRes``; 2.0.11 tolerates its
    absence. Scoring must work with both: here loadRes behaves like the older releases."""
    from pycocotools.coco import COCO

    load_res = COCO.loadRes

    def strict_load_res(self, results):
        self.dataset["info"]  # noqa: B018 (KeyError, as in pycocotools 2.0.9/2.0.10)
        return load_res(self, results)

    monkeypatch.setattr(COCO, "loadRes", strict_load_res)
    coco = {"images": [{"id": 1, "width": 100, "height": 100, "file_name": "x.jpg"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 0, "bbox": [10, 10, 20, 20], "area": 400,
                             "iscrowd": 0}],
            "categories": [{"id": 0, "name": "a"}]}
    hit = {"image_id": 1, "category_id": 0, "bbox": [10, 10, 20, 20], "score": 0.5}
    assert score_dec([hit], coco)["map50"] == pytest.approx(1.0)


def test_scorer_functions_by_hand():
    assert score_cls([{"a.jpg": 1}, {"b.jpg": 2}, {"c.jpg": 0}], {"a.jpg": 1, "b.jpg": 1, "c.jpg": 0}) == 2 / 3
    assert score_cls({"a.jpg": 1, "b.jpg": 1}, {"a.jpg": 1, "b.jpg": 1}) == 1.0
    coco = {"images": [{"id": 1, "width": 100, "height": 100, "file_name": "x.jpg"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 0, "bbox": [10, 10, 20, 20], "area": 400,
                             "iscrowd": 0}],
            "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]}
    hit = {"image_id": 1, "category_id": 0, "bbox": [10, 10, 20, 20], "score": 0.5}
    miss = {"image_id": 1, "category_id": 0, "bbox": [60, 60, 20, 20], "score": 0.9}
    assert score_dec([hit], coco)["map50"] == pytest.approx(1.0)
    assert score_dec([miss, hit], coco)["map50"] == pytest.approx(0.5)
    shifted = {**hit, "bbox": [20, 10, 20, 20]}  # IoU 1/3 < 0.5
    assert score_dec([shifted], coco)["map50"] == pytest.approx(0.0)
    # mIoU as PaddleSeg computes it: ignored pixels out, empty unions count as 0 in the mean
    label = np.array([[0, 1], [1, 255]], np.uint8)
    pred = np.array([[0, 0], [1, 1]], np.uint8)
    areas = seg_areas(pred, label, 2)
    assert areas.tolist() == [[1, 1], [2, 1], [1, 2]]
    assert mean_iou(areas)[1] == pytest.approx(0.5)
    assert mean_iou(seg_areas(pred, label, 3))[1] == pytest.approx(1 / 3)


def test_unlabelled_or_invalid_is_not_scored(val, tmp_path):
    tmp, truth, ref = val
    test_ref = AllInOneReference.from_dataset(tmp / "data", "val")
    test_ref.cls_labels = None
    with pytest.raises(NotScorable, match="has no labels"):
        score_allinone({}, test_ref)
    bad = _submission(tmp, truth, ref, "bad")
    bad["cls"].pop()
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(NotScorable, match="refusing to score an invalid submission"):
        score_allinone_file(path, ref)


def test_retrieval_map10_by_hand(tmp_path):
    data = write_retrieval_dataset(tmp_path / "data", n_val=24)
    ref = RetrievalReference.from_dataset(tmp_path / "data", "val")
    assert ref.labelled and len(ref.queries) == 24 and ref.gallery[12] == "000012.jpg"
    names = ref.gallery
    # query 0 is "A white Audi." (vehicles 0, 3, 6, 9 share it): hits at ranks 1 and 3
    q0 = [names[0], names[1], names[3], names[2], names[4], names[5], names[7], names[8], names[10], names[11]]
    # query 1 ("A red Audi."): no hit at all
    q1 = [names[i] for i in (0, 2, 3, 5, 6, 8, 9, 11, 12, 13)]
    # query 12 (pedestrian 1,0,1,0...): images 12, 15, 18, 21 equal; 13, 16, 19, 22 (same gender, a
    # superset of its 1s) match by inclusion; 14, 17, 20, 23 (other gender) do not
    q12 = [names[i] for i in (14, 13, 17, 12, 0, 1, 2, 3, 4, 5)]
    results = [{"text": text, "image_names": q0 if i == 0 else q1 if i == 1 else q12 if i == 12 else
                [names[(i + k) % 24] for k in range(10)]} for i, text in enumerate(ref.queries)]
    per_query = [((1 + 1e-6) / 1 + (2 + 1e-6) / 3) / (2 + 1e-6), 0.0, ((1 + 1e-6) / 2 + (2 + 1e-6) / 4) / (2 + 1e-6)]
    scores = score_retrieval({"results": results}, ref)
    # the other queries' lists: recompute their APs with the same loop, to isolate the three above
    from trafficfm.retrieval.metrics import average_precision
    from trafficfm.retrieval.relevance import is_relevant

    attrs = dict(zip(names, [row[3] for row in data["val"]]))
    rest = [average_precision(r["image_names"], {n for n in names if is_relevant(ref.query_attributes[i], attrs[n])})
            for i, r in enumerate(results) if i not in (0, 1, 12)]
    assert scores["map10"] == pytest.approx((sum(per_query) + sum(rest)) / 24, abs=1e-12)
    with pytest.raises(Exception, match="order of texts is wrong"):
        score_retrieval({"results": results[::-1]}, ref)
