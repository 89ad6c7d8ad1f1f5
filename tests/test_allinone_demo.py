"""Integration: a tiny demo release in the organisers' layout -> the converter -> training,
evaluation and prediction of the AllInOne stage (tiny backbone, a few steps).

Whether training learns is checked where a few steps can show it (test_allinone_train.py, a dataset
drawn independently of the demo); this test checks that the stages fit together on the demo and
that every prediction lands on the right test image."""

import json

import pandas as pd
import pytest
import torch
from tiny_settings import tiny

from trafficfm.allinone.datasets import read_rgb
from trafficfm.allinone.evaluate import evaluate
from trafficfm.allinone.inference import coco_results, detect_image, load_model
from trafficfm.allinone.predict import predict
from trafficfm.allinone.train import train
from trafficfm.data.convert_allinone import convert_allinone
from trafficfm.data.demo import make_demo_release

SETTINGS = tiny("allinone.train.steps=3", "allinone.train.tasks.det.crop=128")
# every test image gets boxes (no score threshold), so that their ids can be told apart below
PREDICT = SETTINGS.allinone.replace("inference.det_score_thresh=0.0", "inference.det_max_per_image=5")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    base = tmp_path_factory.mktemp("allinone_demo")
    data = SETTINGS.data
    make_demo_release(base / "release", data.demo, data.layout)
    convert_allinone(base / "release", base / "data", data.layout.allinone, data.demo.cls_classes, data.on_error)
    return base


def test_demo_release_trains_evaluates_and_predicts(converted):
    base = converted
    cfg = SETTINGS.allinone
    summary = train(base / "data", base / "model.pt", base / "ckpt", cfg, curve_path=base / "curve.png")
    assert summary["finished"]
    predict(base / "model.pt", base / "data", base / "predictions", "val", cfg)
    metrics = evaluate(base / "predictions", base / "data", base / "val_metrics.json", base)
    assert set(metrics) == {"top1", "map50", "miou", "score"}
    assert all(0 <= v <= 1 for v in metrics.values()) and metrics["score"] == pytest.approx(
        (metrics["top1"] + metrics["map50"] + metrics["miou"]) / 3)
    out = base / "predictions"
    predict(base / "model.pt", base / "data", out, "test", PREDICT)
    names = set(pd.read_csv(out / "cls_test.csv")["name"])
    assert names == {p.name for p in (base / "release" / "track1_test_data" / "cls" / "test").iterdir()}
    assert len(list((out / "seg_test").glob("*.png"))) == len(
        list((base / "release" / "track1_test_data" / "seg" / "images" / "test").glob("*.jpg")))

    # Detection ids: image_id n holds the boxes of the image on line n of dec/test.txt (the
    # organisers' numbering), exactly as detecting that image on its own gives them.
    release = base / "release" / "track1_test_data" / "dec"
    lines = (release / "test.txt").read_text().split()
    by_id: dict[int, list] = {}
    for det in json.loads((out / "det_test.json").read_text()):
        by_id.setdefault(det["image_id"], []).append(det)
    assert sorted(by_id) == list(range(1, len(lines) + 1))
    model, blob = load_model(base / "model.pt", "cpu")
    for number, name in enumerate(lines, 1):
        alone = detect_image(model, read_rgb(release / "test" / name), torch.device("cpu"), PREDICT["inference"],
                             PREDICT["precision"])
        assert by_id[number] == coco_results(number, alone, blob["class_names"]["det_category_ids"]), name
    assert len({json.dumps([d["bbox"] for d in dets]) for dets in by_id.values()}) == len(lines)  # all differ
