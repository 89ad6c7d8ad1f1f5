"""Building the AllInOne JSON: the organisers' exact format, both forms, polygons, image ids."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from rawrelease import write_raw_release
from test_submission_data import (blobby_label_map, write_allinone_dataset,
                                  write_allinone_predictions)
from trafficfm.config import load
from trafficfm.data import convert_allinone as _allinone
from trafficfm.submission.allinone import build_allinone, build_dec
from trafficfm.submission.polygons import class_polygons, label_map_polygons, rasterise
from trafficfm.submission.reference import AllInOneReference
from trafficfm.submission.validate import Report, parse_payload, validate_allinone

LAYOUT = load().data.layout  # the organisers' names, as config.yaml gives them


def convert_allinone(root, out, num_classes, on_error="fail"):
    return _allinone.convert_allinone(root, out, LAYOUT.allinone, num_classes, on_error)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The organisers' raw layout through the real converter: dec/test.txt is t2, t0, t1."""
    root = tmp_path_factory.mktemp("release")
    write_raw_release(root)
    out = tmp_path_factory.mktemp("canonical")
    convert_allinone(root, out, num_classes=5)
    return out


def _predictions(directory: Path, reference: AllInOneReference, boxes: list[dict]) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cls_test.csv").write_text("name,label\n" + "".join(
        f"{n},{i % 5}\n" for i, n in enumerate(reversed(reference.cls_names))))
    (directory / "det_test.json").write_text(json.dumps(boxes))
    seg = directory / "seg_test"
    seg.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    maps = {}
    for key, (w, h) in reference.seg_images.items():
        maps[key] = blobby_label_map(w, h, rng)
        Image.fromarray(maps[key]).save(seg / key)
    return {"cls": directory / "cls_test.csv", "det": directory / "det_test.json", "seg": seg, "maps": maps}


def test_format_on_converted_release(converted, tmp_path):
    ref = AllInOneReference.from_dataset(converted, "test")
    assert ref.det_images == {1: (120, 92), 2: (120, 90), 3: (120, 91)}  # ids = lines of dec/test.txt
    boxes = [{"image_id": 2, "category_id": 44, "bbox": [1, 2.5, 30, 40], "score": 0.25},
             {"image_id": 1, "category_id": 0, "bbox": [0.0, 0.0, 120.0, 92.0], "score": 0.9},
             {"image_id": 2, "category_id": 7, "bbox": [10, 20, 5, 5], "score": 0.75, "extra": "dropped"}]
    p = _predictions(tmp_path / "pred", ref, boxes)
    sub = build_allinone(p["cls"], p["det"], p["seg"], ref)
    payload = sub.to_json()
    data = json.loads(payload)
    assert list(data) == ["cls", "dec", "seg"]
    # cls: one-key objects, in the canonical order, integer class ids
    assert [list(e) for e in data["cls"]] == [[n] for n in ref.cls_names]
    assert data["cls"][0] == {"00000.jpg": 2} and all(type(next(iter(e.values()))) is int for e in data["cls"])
    # dec: image id order, then score; exactly the four keys; ints stay ints, floats are floats
    assert data["dec"] == [
        {"image_id": 1, "category_id": 0, "bbox": [0.0, 0.0, 120.0, 92.0], "score": 0.9},
        {"image_id": 2, "category_id": 7, "bbox": [10.0, 20.0, 5.0, 5.0], "score": 0.75},
        {"image_id": 2, "category_id": 44, "bbox": [1.0, 2.5, 30.0, 40.0], "score": 0.25},
    ]
    # seg: key = test JPEG name with .png; every class id as a string, in order; polygons of [x, y] ints
    assert [list(e) for e in data["seg"]] == [["00000.png"], ["00001.png"], ["00002.png"]]
    classes = data["seg"][0]["00000.png"]
    assert list(classes) == [str(c) for c in range(19)]
    polygon = next(p for polys in classes.values() for p in polys)
    assert all(type(v) is int for point in polygon for v in point) and all(len(pt) == 2 for pt in polygon)
    # same content as the in-memory form, and the validator accepts it
    assert data == sub.to_obj()
    report = Report("allinone", "test")
    validate_allinone(parse_payload(payload, report), ref, "list", report=report)
    assert report.valid, report.to_text()
    # the polygons draw back into the predicted maps, pixel for pixel
    for entry in data["seg"]:
        (key, polys), = entry.items()
        h, w = p["maps"][key].shape
        assert np.array_equal(rasterise(polys, h, w), p["maps"][key])


def test_image_id_decides_the_box_check(converted, tmp_path):
    """Line 2 of dec/test.txt (t0.jpg) is 90 px high; line 1 (t2.jpg) 92 px."""
    ref = AllInOneReference.from_dataset(converted, "test")
    box = {"category_id": 1, "bbox": [0, 50, 10, 41.5], "score": 0.5}  # bottom at 91.5
    for image_id, valid in ((1, True), (2, False)):
        p = _predictions(tmp_path / str(image_id), ref, [{"image_id": image_id, **box}])
        payload = build_allinone(p["cls"], p["det"], p["seg"], ref).to_json()
        report = Report("allinone", "test")
        validate_allinone(parse_payload(payload, report), ref, report=report)
        assert report.valid is valid, report.to_text()
        if not valid:
            assert report.violations[0].path == "dec[0].bbox"
            assert "outside its 120x90 image" in report.violations[0].message


def test_object_form_holds_the_same_content(tmp_path):
    truth = write_allinone_dataset(tmp_path / "data", "test")
    p = write_allinone_predictions(tmp_path / "pred", truth)
    ref = AllInOneReference.from_dataset(tmp_path / "data", "test")
    as_list = json.loads(build_allinone(p["cls"], p["det"], p["seg"], ref, form="list").to_json())
    as_object = json.loads(build_allinone(p["cls"], p["det"], p["seg"], ref, form="object").to_json())
    assert as_object["cls"] == {"00001.jpg": 0, "00002.jpg": 0, "00003.jpg": 0, "00004.jpg": 0,
                                "00005.jpg": 0, "00006.jpg": 0}
    assert list(as_object["seg"]) == ["00054.png", "00055.png", "00056.png"]
    assert [{k: v} for k, v in as_object["cls"].items()] == as_list["cls"]
    assert [{k: v} for k, v in as_object["seg"].items()] == as_list["seg"]
    assert as_object["dec"] == as_list["dec"]


def test_detections_bounded_per_image_and_clipped(tmp_path):
    write_allinone_dataset(tmp_path / "data", "test")
    ref = AllInOneReference.from_dataset(tmp_path / "data", "test")
    boxes = [{"image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5], "score": s / 1000} for s in range(120)]
    boxes.append({"image_id": 1, "category_id": 2, "bbox": [-0.4, 80.5, 120.3, 10.2], "score": 0.123456789})
    path = tmp_path / "det.json"
    path.write_text(json.dumps(boxes))
    kept, dropped = build_dec(path, ref, max_dets_per_image=100)
    assert dropped == 20 and len(kept) == 101
    assert kept[0] == {"image_id": 1, "category_id": 2, "bbox": [0.0, 80.5, 119.9, 9.5], "score": 0.123457}
    scores = [d["score"] for d in kept[1:]]
    assert scores == sorted(scores, reverse=True) and min(scores) == 0.02
    # a sliver thinner than the rounding keeps its size; a box wholly in the margin goes
    path.write_text(json.dumps([{"image_id": 1, "category_id": 2, "bbox": [5, 5, 0.004, 3], "score": 0.5},
                                {"image_id": 1, "category_id": 2, "bbox": [-0.9, 5, 0.5, 3], "score": 0.5},
                                {"image_id": 1, "category_id": 2, "bbox": [130, 5, 4, 3], "score": 0.5}]))
    kept, dropped = build_dec(path, ref)
    assert dropped == 1 and kept[0]["bbox"] == pytest.approx([5.0, 5.0, 0.004, 3.0])
    assert kept[1]["bbox"] == [130.0, 5.0, 4.0, 3.0]  # far outside: left for the validator to report


def test_blobby_maps_round_trip_exactly():
    rng = np.random.default_rng(5)
    for width, height in ((1280, 720), (97, 61), (33, 20)):
        label = blobby_label_map(width, height, rng, blobs=30)
        polygons = label_map_polygons(label, 19)
        assert list(polygons) == list(range(19))
        assert all(len(p) >= 3 for polys in polygons.values() for p in polys)
        drawn = rasterise({str(c): polys for c, polys in polygons.items()}, height, width)
        assert np.array_equal(drawn, label)


def test_noise_round_trips_exactly_and_drop_loses_only_thin_parts():
    rng = np.random.default_rng(1)
    for _ in range(50):
        label = rng.integers(0, 4, size=(24, 24), dtype=np.uint8)
        padded = rasterise({str(c): p for c, p in label_map_polygons(label, 4).items()}, 24, 24)
        assert np.array_equal(padded, label)
    label = np.zeros((40, 60), np.uint8)
    cv2.circle(label, (30, 20), 12, 3, -1)
    label[5, 5] = 3  # a lone pixel: a 1-point contour
    label[30:38, 50] = 3  # a one-pixel line: a 2-point contour
    dropped = rasterise({str(c): p for c, p in label_map_polygons(label, 4, small="drop").items()}, 40, 60)
    blob = label == 3
    iou = (blob & (dropped == 3)).sum() / (blob | (dropped == 3)).sum()
    assert 0.97 < iou < 1.0 and dropped[5, 5] == 0 and (dropped[30:38, 50] == 0).all()


def test_holes_and_islands_are_separate_polygons():
    """RETR_TREE: the outer border, the hole's border and the island's border, all in one list."""
    mask = np.zeros((20, 20), np.uint8)
    mask[2:18, 2:18] = 1
    mask[6:14, 6:14] = 0
    mask[9:11, 9:11] = 1
    polygons = class_polygons(mask)
    assert len(polygons) == 3
    assert polygons[0].tolist() == [[2, 2], [2, 17], [17, 17], [17, 2]]
    drawn = rasterise({"1": polygons}, 20, 20)
    assert np.array_equal(drawn, mask)
    # drawn one by one (not the scorer's way) the hole would be filled: the even-odd fill matters
    assert rasterise({"1": polygons[:1]}, 20, 20)[10, 7] == 1


def test_unusable_label_maps_are_reported(tmp_path):
    write_allinone_dataset(tmp_path / "data", "test")
    ref = AllInOneReference.from_dataset(tmp_path / "data", "test")
    seg = tmp_path / "seg_test"
    seg.mkdir()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(seg / "00054.png")  # wrong size
    Image.fromarray(np.full((30, 40), 19, np.uint8)).save(seg / "00055.png")  # not a class id
    Image.fromarray(np.zeros((36, 52, 3), np.uint8)).save(seg / "00056.png")  # colour
    from trafficfm.submission.allinone import build_seg

    entries, problems = build_seg(seg, ref)
    assert entries == []
    messages = dict(problems)
    assert "label map is 10x10, the image is 48x32" in messages["seg_test/00054.png"]
    assert "values [19] that are not class ids 0..18" in messages["seg_test/00055.png"]
    assert "mode RGB" in messages["seg_test/00056.png"]
