"""Integration: a tiny demo release in the organisers' layout -> the lead's converter -> training,
evaluation and prediction of the AllInOne stage (tiny backbone, a few steps)."""

import json

import pandas as pd
import pytest
from tiny_settings import tiny

from trafficfm.allinone.evaluate import evaluate  # noqa: E402
from trafficfm.allinone.predict import predict  # noqa: E402
from trafficfm.allinone.train import train  # noqa: E402

SETTINGS = tiny("allinone.train.steps=3", "allinone.train.tasks.det.crop=128")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    demo_mod = pytest.importorskip("trafficfm.data.demo")
    convert = pytest.importorskip("trafficfm.data.convert_allinone")
    base = tmp_path_factory.mktemp("allinone_demo")
    data = SETTINGS.data
    demo_mod.make_demo_release(base / "release", data.demo, data.layout)
    convert.convert_allinone(base / "release", base / "data", data.layout.allinone, data.demo.cls_classes,
                             data.on_error)
    return base


def test_demo_release_trains_evaluates_and_predicts(converted):
    base = converted
    cfg = SETTINGS.allinone
    summary = train(base / "data", base / "model.pt", base / "ckpt", cfg, curve_path=base / "curve.png")
    assert summary["finished"]
    predict(base / "model.pt", base / "data", base / "predictions", "val", cfg)
    metrics = evaluate(base / "predictions", base / "data", base / "val_metrics.json", base)
    assert set(metrics) == {"top1", "map50", "miou", "score"}
    out = base / "predictions"
    predict(base / "model.pt", base / "data", out, "test", cfg)
    test_list = (base / "release" / "track1_test_data" / "dec" / "test.txt").read_text().split()
    ids = {d["image_id"] for d in json.loads((out / "det_test.json").read_text())}
    assert ids <= set(range(1, len(test_list) + 1))  # 1-based lines of dec/test.txt
    names = set(pd.read_csv(out / "cls_test.csv")["name"])
    assert names == {p.name for p in (base / "release" / "track1_test_data" / "cls" / "test").iterdir()}
    assert len(list((out / "seg_test").glob("*.png"))) == len(
        list((base / "release" / "track1_test_data" / "seg" / "images" / "test").glob("*.jpg")))
