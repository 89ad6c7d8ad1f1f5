"""The validator: each kind of violation is caught, located and explained; valid files pass."""

from __future__ import annotations

import copy
import json
import zipfile

import pytest

from test_submission_data import (write_allinone_dataset, write_allinone_predictions, write_rankings,
                                  write_retrieval_dataset)
from trafficfm.submission.allinone import build_allinone
from trafficfm.submission.reference import AllInOneReference, RetrievalReference
from trafficfm.submission.retrieval import build_retrieval
from trafficfm.submission.validate import (Report, parse_payload, validate_allinone, validate_allinone_file,
                                           validate_retrieval)


@pytest.fixture(scope="module")
def allinone(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("v")
    truth = write_allinone_dataset(tmp / "data", "test")
    p = write_allinone_predictions(tmp / "pred", truth)
    ref = AllInOneReference.from_dataset(tmp / "data", "test")
    obj = build_allinone(p["cls"], p["det"], p["seg"], ref).to_obj()
    return ref, obj


@pytest.fixture(scope="module")
def retrieval(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("r")
    data = write_retrieval_dataset(tmp / "data")
    ref = RetrievalReference.from_dataset(tmp / "data", "test")
    obj = build_retrieval(write_rankings(tmp / "rk.csv", data["queries"], data["test_names"]), ref).to_obj()
    return ref, obj


def check(payload: bytes | str, ref, track="allinone", **kwargs) -> Report:
    report = Report(track, ref.split)
    obj = parse_payload(payload.encode() if isinstance(payload, str) else payload, report)
    if obj is not None:
        (validate_allinone if track == "allinone" else validate_retrieval)(obj, ref, report=report, **kwargs)
    return report


def first_seg(obj):
    return next(iter(obj["seg"][0].values()))


ALLINONE_CASES = [
    # (name, mutation, code, path, message fragment)
    ("missing top key", lambda o: o.pop("dec"), "structure", "", "missing top-level key 'dec'"),
    ("unknown top key", lambda o: o.update(extra=1), "structure", "", "unknown top-level key 'extra'"),
    ("cls not a list", lambda o: o.update(cls="x"), "structure", "cls", "must be a list of one-key objects"),
    ("cls two keys", lambda o: o["cls"][0].update({"x.jpg": 1}), "structure", "cls[0]", "exactly one key"),
    ("cls unknown name", lambda o: o["cls"].append({"99999.jpg": 1}), "unknown-name", 'cls[6]["99999.jpg"]',
     "'99999.jpg' is not a classification test image"),
    ("cls duplicate", lambda o: o["cls"].append({"00001.jpg": 1}), "duplicate", 'cls[6]["00001.jpg"]',
     "appears more than once"),
    ("cls missing", lambda o: o["cls"].pop(2), "missing", "cls",
     "no entry for a classification test image '00003.jpg'"),
    ("cls float", lambda o: o["cls"][1].update({"00002.jpg": 1.0}), "class-id", 'cls[1]["00002.jpg"]',
     "must be an integer, got 1.0"),
    ("cls bool", lambda o: o["cls"][1].update({"00002.jpg": True}), "class-id", 'cls[1]["00002.jpg"]',
     "must be an integer, got true"),
    ("cls range", lambda o: o["cls"][1].update({"00002.jpg": 5}), "class-id", 'cls[1]["00002.jpg"]',
     "class id 5 out of range 0..4"),
    ("dec empty", lambda o: o.update(dec=[]), "structure", "dec", "is empty"),
    ("dec missing key", lambda o: o["dec"][0].pop("score"), "structure", "dec[0]", "missing key(s) score"),
    ("dec extra key", lambda o: o["dec"][0].update(area=3), "structure", "dec[0]", "unknown key(s) 'area'"),
    ("image id 0", lambda o: o["dec"][0].update(image_id=0), "image-id", "dec[0].image_id",
     "0 is not an image id: expected 1..3 (the line numbers of dec/test.txt)"),
    ("image id N+1", lambda o: o["dec"][0].update(image_id=4), "image-id", "dec[0].image_id", "4 is not an image id"),
    ("image id string", lambda o: o["dec"][0].update(image_id="1"), "image-id", "dec[0].image_id",
     'must be an integer, got "1"'),
    ("category", lambda o: o["dec"][1].update(category_id=45), "category-id", "dec[1].category_id",
     "45 is not a category id (0..44)"),
    ("box size", lambda o: o["dec"][0].update(bbox=[1, 2, 0, 5]), "bbox", "dec[0].bbox",
     "non-positive width or height"),
    ("box shape", lambda o: o["dec"][0].update(bbox=[1, 2, 3]), "bbox", "dec[0].bbox", "must be a list of 4 numbers"),
    ("box outside", lambda o: o["dec"][0].update(bbox=[100, 80, 30, 20]), "bbox", "dec[0].bbox",
     "outside its 120x90 image by more than 1 px"),
    ("box string", lambda o: o["dec"][0].update(bbox=[1, "2", 3, 4]), "bbox", "dec[0].bbox", "must be numbers"),
    ("score range", lambda o: o["dec"][0].update(score=1.5), "score", "dec[0].score", "1.5 is outside [0, 1]"),
    ("score null", lambda o: o["dec"][0].update(score=None), "score", "dec[0].score",
     "must be a finite number, got null"),
    ("seg unknown", lambda o: o["seg"].append({"zzz.png": first_seg(o)}), "unknown-name", 'seg[3]["zzz.png"]',
     "is not a segmentation image key"),
    ("seg missing", lambda o: o["seg"].pop(0), "missing", "seg", "no entry for a segmentation image key "
                                                                  "(<JPEG stem>.png) '00054.png'"),
    ("seg jpg key", lambda o: o["seg"].__setitem__(0, {"00054.jpg": first_seg(o)}), "unknown-name",
     'seg[0]["00054.jpg"]', "'00054.jpg' is not a segmentation image key"),
    ("class key missing", lambda o: first_seg(o).pop("18"), "structure", 'seg[0]["00054.png"]',
     "missing class key(s) ['18']"),
    ("class key extra", lambda o: first_seg(o).update({"19": []}), "structure", 'seg[0]["00054.png"]["19"]',
     "'19' is not a class id"),
    ("class not list", lambda o: first_seg(o).update({"3": {}}), "polygon", 'seg[0]["00054.png"]["3"]',
     "must be a list of polygons"),
    ("two points", lambda o: first_seg(o)["4"].append([[1, 1], [2, 2]]), "polygon", 'seg[0]["00054.png"]["4"][',
     "has 2 point(s); a polygon needs at least 3"),
    ("point outside", lambda o: first_seg(o)["4"].append([[1, 1], [48, 2], [3, 3]]), "polygon",
     'seg[0]["00054.png"]["4"][', "1 point(s) outside the 48x32 image (x in 0..47, y in 0..31), e.g. [48, 2]"),
    ("negative point", lambda o: first_seg(o)["4"].append([[1, -1], [4, 2], [3, 3]]), "polygon",
     'seg[0]["00054.png"]["4"][', "outside the 48x32 image"),
    ("float point", lambda o: first_seg(o)["4"].append([[1, 1], [4.5, 2], [3, 3]]), "polygon",
     'seg[0]["00054.png"]["4"][', "points must be [x, y] pairs of integers, found [4.5, 2]"),
    ("bool point", lambda o: first_seg(o)["4"].append([[1, 1], [True, 2], [3, 3]]), "polygon",
     'seg[0]["00054.png"]["4"][', "points must be [x, y] pairs of integers, found [true, 2]"),
    ("flat point", lambda o: first_seg(o)["4"].append([1, 2, 3]), "polygon", 'seg[0]["00054.png"]["4"][',
     "found 1"),
]


@pytest.mark.parametrize("name,mutate,code,path,fragment", ALLINONE_CASES, ids=[c[0] for c in ALLINONE_CASES])
def test_allinone_violation(allinone, name, mutate, code, path, fragment):
    ref, obj = allinone
    bad = copy.deepcopy(obj)
    mutate(bad)
    report = check(json.dumps(bad), ref)
    assert not report.valid
    hits = [v for v in report.violations if v.code == code and v.path.startswith(path) and fragment in v.message]
    assert hits, f"expected {code} at {path} with {fragment!r}, got:\n{report.to_text()}"


def test_valid_allinone_passes_in_both_forms(allinone):
    ref, obj = allinone
    report = check(json.dumps(obj), ref, form="list")
    assert report.valid, report.to_text()
    assert report.summary["cls"] == 6 and report.summary["seg"] == 3
    as_object = {"cls": {k: v for e in obj["cls"] for k, v in e.items()}, "dec": obj["dec"],
                 "seg": {k: v for e in obj["seg"] for k, v in e.items()}}
    assert check(json.dumps(as_object), ref).valid
    wrong_form = check(json.dumps(as_object), ref, form="list")
    assert {(v.code, v.path) for v in wrong_form.violations} == {("form", "cls"), ("form", "seg")}
    assert "is in the object form; the list form is required" in wrong_form.violations[0].message


def test_json_level_problems(allinone):
    ref, obj = allinone
    assert "invalid JSON at line 1" in str(check('{"cls": [', ref).violations[0])
    assert "byte-order mark" in str(check(b"\xef\xbb\xbf" + json.dumps(obj).encode(), ref).violations[0])
    assert "not UTF-8" in str(check(b'{"cls": "\xff"}', ref).violations[0])
    bad = copy.deepcopy(obj)
    bad["dec"][0]["score"] = float("nan")
    report = check(json.dumps(bad), ref)
    assert {v.code for v in report.violations} == {"json", "score"}
    assert "non-standard JSON constant(s) ['NaN']" in str(report.violations[0])
    text = json.dumps(obj).replace('{"00001.jpg": 0}', '{"00001.jpg": 0, "00001.jpg": 1}', 1)
    assert any(v.code == "duplicate" and v.path == 'cls[0]["00001.jpg"]' for v in check(text, ref).violations)
    text = json.dumps(obj).replace('"dec":', '"dec": [], "dec":', 1)
    assert "top-level key 'dec' appears more than once" in check(text, ref).to_text()


def test_zip_containers(allinone, tmp_path):
    ref, obj = allinone
    payload = json.dumps(obj).encode()

    def write_zip(name, members):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as z:
            for member, data in members:
                z.writestr(member, data)
        return path

    report, parsed = validate_allinone_file(write_zip("ok.zip", [("pred_results.json", payload)]), ref)
    assert report.valid and report.member == "pred_results.json" and parsed is not None
    report, _ = validate_allinone_file(write_zip("two.zip", [("a.json", payload), ("b.json", payload)]), ref)
    assert "exactly one .json file, it holds 2" in report.to_text()
    report, _ = validate_allinone_file(write_zip("extra.zip", [("a.json", payload), ("notes.txt", b"x")]), ref)
    assert "non-JSON files ['notes.txt']" in report.to_text()
    report, _ = validate_allinone_file(write_zip("nested.zip", [("out/a.json", payload)]), ref)
    assert "inside a folder of the zip" in report.to_text()
    plain = tmp_path / "plain.json"
    plain.write_bytes(payload)
    assert validate_allinone_file(plain, ref)[0].valid
    (tmp_path / "garbage.zip").write_bytes(b"PK\x03\x04" + b"\0" * 30)
    assert not validate_allinone_file(tmp_path / "garbage.zip", ref)[0].valid


def test_many_violations_are_counted_and_listed_briefly(allinone):
    ref, obj = allinone
    bad = copy.deepcopy(obj)
    bad["dec"] = [dict(d, score=2.0) for d in bad["dec"] * 500]
    report = check(json.dumps(bad), ref)
    report.keep = 10
    assert report.counts["score"] == 1500 and report.total == 1500
    text = report.to_text(max_listed=5)
    assert text.count("\n  dec[") == 5 and "... and 1495 more (by kind: score 1500)" in text
    assert len(report.to_dict(max_listed=7)["violations"]) == 7


def test_too_many_boxes_is_a_warning(allinone):
    ref, obj = allinone
    many = copy.deepcopy(obj)
    many["dec"] = [dict(obj["dec"][0], score=i / 200) for i in range(101)]
    report = check(json.dumps(many), ref)
    assert report.valid and "more than 100 boxes" in report.warnings[0]


RETRIEVAL_CASES = [
    ("no results", lambda o: o.pop("results"), "structure", "", "missing top-level key 'results'"),
    ("count", lambda o: o["results"].pop(), "count", "results", "has 6 entries; test_text.txt has 7 queries"),
    ("order", lambda o: o["results"].insert(0, o["results"].pop(1)), "text", "results[0].text",
     "is not query 1 of test_text.txt"),
    ("nine names", lambda o: o["results"][2]["image_names"].pop(), "names", "results[2].image_names",
     "has 9 names; exactly 10 are required"),
    ("repeated name", lambda o: o["results"][2]["image_names"].__setitem__(1, o["results"][2]["image_names"][0]),
     "duplicate", "results[2].image_names[1]", "appears more than once in this list"),
    ("unknown name", lambda o: o["results"][3]["image_names"].__setitem__(4, "nope.jpg"), "unknown-name",
     "results[3].image_names[4]", "'nope.jpg' is not an image of the test split"),
    ("extra key", lambda o: o["results"][0].update(scores=[]), "structure", "results[0]", "unknown key(s) 'scores'"),
    ("text type", lambda o: o["results"][0].update(text=3), "text", "results[0].text", "must be a string"),
    ("name type", lambda o: o["results"][0]["image_names"].__setitem__(0, 7), "names",
     "results[0].image_names[0]", "must be a string, got 7"),
]


@pytest.mark.parametrize("name,mutate,code,path,fragment", RETRIEVAL_CASES, ids=[c[0] for c in RETRIEVAL_CASES])
def test_retrieval_violation(retrieval, name, mutate, code, path, fragment):
    ref, obj = retrieval
    bad = copy.deepcopy(obj)
    mutate(bad)
    report = check(json.dumps(bad), ref, "retrieval")
    hits = [v for v in report.violations if v.code == code and v.path.startswith(path) and fragment in v.message]
    assert hits, f"expected {code} at {path} with {fragment!r}, got:\n{report.to_text()}"


def test_valid_retrieval_passes(retrieval):
    ref, obj = retrieval
    report = check(json.dumps(obj), ref, "retrieval")
    assert report.valid, report.to_text()
    # escapes in the query text (quotes, apostrophes) survive: the texts compare equal after parsing
    assert obj["results"][0]["text"] == 'This is a red car, isn\'t it? "0"'
    assert check(json.dumps(obj), ref, "retrieval", top_k=5).counts["names"] == 7
