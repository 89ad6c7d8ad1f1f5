"""Conversion of an independent raw release, and malformed copies that must fail precisely."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rawrelease import write_raw_release
from trafficfm.data.canonical import Dataset
from trafficfm.config import load
from trafficfm.data import convert_allinone as _allinone
from trafficfm.data import convert_retrieval as _retrieval
from trafficfm.data.errors import DataError

LAYOUT = load().data.layout  # the organisers' names, as config.yaml gives them


def convert_allinone(root, out, num_classes, on_error="fail"):
    return _allinone.convert_allinone(root, out, LAYOUT.allinone, num_classes, on_error)


def convert_retrieval(root, out, on_error="fail"):
    return _retrieval.convert_retrieval(root, out, LAYOUT.retrieval, on_error)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    expected = write_raw_release(root)
    return root, expected


@pytest.fixture()
def copy(release, tmp_path):
    root, _ = release
    target = tmp_path / "copy"
    shutil.copytree(root, target)
    return target


def test_allinone_converts_every_record(release, tmp_path):
    root, expected = release
    manifest = convert_allinone(root, tmp_path / "out", num_classes=5)
    data = Dataset.open(tmp_path / "out")
    for split, records in expected["cls"].items():
        table = data.table(f"cls_{split}")
        assert [(Path(p).name, label) for p, label in zip(table["image"], table["label"])] == records
        assert all(Path(p).exists() for p in table["path"])
    train = data.table("cls_train")
    assert (train["width"].tolist()[0], train["height"].tolist()[0]) == (40, 30)
    for split, (n_images, n_boxes) in expected["det"].items():
        coco = data.coco(split)
        assert (len(coco["images"]), len(coco["annotations"])) == (n_images, n_boxes)
        assert coco["annotations"][0]["bbox"] == [5.0, 6.0, 8.5, 9.0]
        assert [c["id"] for c in coco["categories"]] == list(range(45))
        assert all(data.resolve(im["file_name"]).exists() for im in coco["images"])
    test = data.coco("test")
    # image id = 1-based line of dec/test.txt: the submission's image_id
    assert [(im["id"], Path(im["file_name"]).name) for im in test["images"]] == [
        (1, "t2.jpg"), (2, "t0.jpg"), (3, "t1.jpg")]
    assert test["images"][0]["height"] == 92
    seg = data.table("seg_val")
    assert len(seg) == 3 and all(Path(p).exists() for p in seg["label_path"])
    assert data.table("seg_test")["label"].tolist() == ["", "", ""]
    assert data.table("cls_test")["label"].tolist() == [-1, -1, -1]
    assert manifest["skipped"]["count"] == 0


def test_pycocotools_reads_converted_detection(release, tmp_path):
    from pycocotools.coco import COCO

    root, _ = release
    convert_allinone(root, tmp_path / "out", num_classes=5)
    api = COCO(str(tmp_path / "out" / "det_train.json"))
    assert len(api.getAnnIds()) == 6 and len(api.getCatIds()) == 45


def test_retrieval_converts_every_line(release, tmp_path):
    root, expected = release
    convert_retrieval(root, tmp_path / "out")
    data = Dataset.open(tmp_path / "out")
    for split, lines in expected["retrieval"].items():
        table = data.table(split)
        assert len(table) == len(lines)
        for row, line in zip(table.itertuples(), lines):
            assert "$".join((row.name, row.attribute, row.caption)) == line
        assert table["kind"].tolist() == ["vehicle"] * 4 + ["pedestrian"] * 3
        assert table["name"].tolist()[4] == "090000"  # pedestrians keep their all-digit names
        assert all(Path(p).exists() for p in table["path"])
    queries = data.table("test_queries")
    assert queries["text"].tolist() == ["This is a white Audi.", "A man, who's walking."]
    images = data.table("test_images")
    assert images["kind"].value_counts().to_dict() == {"pedestrian": 3, "vehicle": 3}


def _corrupt_and_expect(convert, root, tmp_path, *fragments, **kwargs):
    with pytest.raises(DataError) as error:
        convert(root, tmp_path / "out", **kwargs)
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message, message
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_cls_label_out_of_range_names_file_and_line(copy, tmp_path):
    path = copy / "track1_train_data/cls/val.txt"
    path.write_text(path.read_text().replace("val_0002.jpg 3", "val_0002.jpg 9"))
    _corrupt_and_expect(convert_allinone, copy, tmp_path, "track1_train_data/cls/val.txt, line 3",
                        "class id 9 out of range", num_classes=5)


def test_missing_and_unreadable_images(copy, tmp_path):
    (copy / "track1_train_data/cls/train/train_0001.jpg").unlink()
    (copy / "track1_train_data/dec/val/val2.jpg").write_bytes(b"not a jpeg")
    _corrupt_and_expect(convert_allinone, copy, tmp_path,
                        "cls/train.txt, line 2: track1_train_data/cls/train/train_0001.jpg: image file is missing",
                        "dec/val.json, images[2] (id=102, val2.jpg): image is unreadable", num_classes=5)


def test_box_outside_image(copy, tmp_path):
    path = copy / "track1_train_data/dec/train.json"
    coco = json.loads(path.read_text())
    coco["annotations"][1]["bbox"] = [100.0, 6.0, 30.0, 9.0]
    path.write_text(json.dumps(coco))
    _corrupt_and_expect(convert_allinone, copy, tmp_path,
                        "dec/train.json, annotations[1] (id=2)", "lies outside its 128x80 image", num_classes=5)


def test_bad_mask_value(copy, tmp_path):
    label = copy / "track1_train_data/seg/label/train/s1.png"
    array = np.asarray(Image.open(label)).copy()
    array[3, 3] = 19
    Image.fromarray(array).save(label)
    _corrupt_and_expect(convert_allinone, copy, tmp_path, "seg/label/train/s1.png",
                        "label values [19] are neither class ids 0..18 nor 255", num_classes=5)


def test_retrieval_line_with_wrong_field_count(copy, tmp_path):
    path = copy / "val/val_label.txt"
    lines = path.read_text().splitlines()
    lines[5] = lines[5] + "$extra"
    path.write_text("\n".join(lines))
    _corrupt_and_expect(convert_retrieval, copy, tmp_path, "val/val_label.txt, line 6",
                        "expected 3 '$'-separated fields")


def test_skip_mode_drops_and_counts(copy, tmp_path):
    path = copy / "val/val_label.txt"
    path.write_text(path.read_text().replace("valveh1.jpg$", "valveh1.jpg$$"))
    manifest = convert_retrieval(copy, tmp_path / "out", on_error="skip")
    assert manifest["skipped"]["count"] == 1
    assert "val/val_label.txt, line 2" in manifest["skipped"]["first"][0]
    assert len(pd.read_csv(tmp_path / "out" / "val.csv")) == 6
