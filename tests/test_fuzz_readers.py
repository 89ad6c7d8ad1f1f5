"""Random and mutated inputs to the readers of outside files (Hypothesis): the release's label files
and COCO JSON, and submission JSON (AllInOne and retrieval) in the validator. Whatever the bytes,
a reader either accepts them or fails with the project's own error naming the place (file and line
or record; the JSON path in a validation report); it never crashes with a Python error."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from test_submission_data import write_allinone_dataset, write_allinone_predictions, write_rankings, write_retrieval_dataset
from trafficfm.config import load, plain
from trafficfm.data.convert_allinone import convert_cls_split, convert_det_split
from trafficfm.data.convert_retrieval import convert_label_file
from trafficfm.data.errors import DataError, ErrorCollector
from trafficfm.submission.allinone import build_allinone
from trafficfm.submission.reference import AllInOneReference, RetrievalReference
from trafficfm.submission.retrieval import build_retrieval
from trafficfm.submission.validate import Report, parse_payload, validate_allinone, validate_retrieval

# Modest example counts: the suite stays fast; CI runs the same examples each time (derandomize).
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
LAYOUT = plain(load().data.layout)  # the organisers' names, as config.yaml gives them
AIO, RET = LAYOUT["allinone"], LAYOUT["retrieval"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


def _mutations(valid):
    """A valid JSON value with one part replaced (by any JSON value) or removed, recursively."""
    def mutate(value, draw):
        if isinstance(value, dict) and value and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(value)))
            out = dict(value)
            choice = draw(st.integers(0, 2))
            if choice == 0:
                del out[key]
            elif choice == 1:
                out[key] = draw(json_values)
            else:
                out[key] = mutate(value[key], draw)
            return out
        if isinstance(value, list) and value and draw(st.booleans()):
            index = draw(st.integers(0, len(value) - 1))
            out = list(value)
            out[index] = mutate(value[index], draw) if draw(st.booleans()) else draw(json_values)
            return out
        return draw(json_values) if draw(st.booleans()) else value

    @st.composite
    def strategy(draw):
        return mutate(copy.deepcopy(valid), draw)

    return strategy()


def _text_lines(alphabet: str):
    """Label-file text: lines from an alphabet that makes valid-looking lines likely, CR/LF mixed."""
    line = st.text(alphabet=alphabet, max_size=30)
    return st.lists(line, max_size=6).flatmap(
        lambda lines: st.sampled_from(["\n", "\r\n"]).map(lambda eol: eol.join(lines)))


def _assert_place(error: DataError, shown: str) -> None:
    message = str(error)
    assert shown in message, message
    for problem in message.splitlines()[1:]:
        if not problem.strip().startswith("..."):
            assert problem.strip().startswith(shown) or ": " in problem, problem


def _image(path: Path, size=(8, 6)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(path)


# ------------------------------------------------------------------------------ release readers
@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_release")
    for name in ("a.jpg", "b.jpg"):
        _image(root / AIO["train_dir"] / AIO["cls_images"].format(split="val") / name)
        _image(root / AIO["train_dir"] / AIO["det_images"].format(split="val") / name, (40, 30))
    for name in ("v1.jpg", "000001.jpg"):
        _image(root / RET["images"].format(split="val") / name)
    return root


def _converted(check, shown):
    errors = ErrorCollector("fail")
    try:
        check(errors)
        errors.raise_if_failing("release")
    except DataError as error:
        _assert_place(error, shown)


@FUZZ
@given(content=_text_lines("ab.jpg 0123-x\t") | st.binary(max_size=60))
def test_classification_label_file(release, content):
    path = release / AIO["train_dir"] / AIO["cls_list"].format(split="val")
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    _converted(lambda e: convert_cls_split(release, AIO["train_dir"], "val", AIO, 4, e),
               f"{AIO['train_dir']}/{AIO['cls_list'].format(split='val')}")


@FUZZ
@given(content=_text_lines("v1.jpg$,01 Ared") | st.binary(max_size=60))
def test_retrieval_label_file(release, content):
    path = release / RET["label_file"].format(split="val")
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    _converted(lambda e: convert_label_file(release, "val", RET, e), RET["label_file"].format(split="val"))


VALID_COCO = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
               {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 0, "bbox": [1, 2, 10, 8], "area": 80, "iscrowd": 0},
                    {"id": 2, "image_id": 2, "category_id": 1, "bbox": [5, 5, 3, 3], "area": 9, "iscrowd": 0}],
    "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}],
}


@FUZZ
@given(coco=_mutations(VALID_COCO) | json_values)
def test_coco_reader(release, coco):
    path = release / AIO["train_dir"] / AIO["det_json"].format(split="val")
    path.write_text(json.dumps(coco))
    _converted(lambda e: convert_det_split(release, AIO["train_dir"], "val", AIO, VALID_COCO["categories"], e),
               f"{AIO['train_dir']}/{AIO['det_json'].format(split='val')}")


@FUZZ
@given(data=st.binary(max_size=80))
def test_coco_reader_raw_bytes(release, data):
    path = release / AIO["train_dir"] / AIO["det_json"].format(split="val")
    path.write_bytes(data)
    _converted(lambda e: convert_det_split(release, AIO["train_dir"], "val", AIO, VALID_COCO["categories"], e),
               f"{AIO['train_dir']}/{AIO['det_json'].format(split='val')}")


# -------------------------------------------------------------------------- submission readers
@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz_submissions")
    truth = write_allinone_dataset(tmp / "aio", "test")
    p = write_allinone_predictions(tmp / "pred", truth)
    aio_ref = AllInOneReference.from_dataset(tmp / "aio", "test")
    aio = build_allinone(p["cls"], p["det"], p["seg"], aio_ref).to_obj()
    data = write_retrieval_dataset(tmp / "ret", n_test=12, n_queries=3)
    ret_ref = RetrievalReference.from_dataset(tmp / "ret", "test")
    ret = build_retrieval(write_rankings(tmp / "rk.csv", data["queries"], data["test_names"]), ret_ref).to_obj()
    shutil.rmtree(tmp / "pred")
    return {"allinone": (aio_ref, aio), "retrieval": (ret_ref, ret)}


def _validated(payload: bytes, ref, track: str) -> None:
    report = Report(track, ref.split)
    obj = parse_payload(payload, report)
    if obj is not None:
        (validate_allinone if track == "allinone" else validate_retrieval)(obj, ref, report=report)
    for violation in report.violations:  # each names its place in the JSON (or the top level)
        assert violation.code and violation.message, violation
        assert violation.path or violation.code in ("json", "container", "structure"), violation


def _small_allinone(obj: dict) -> dict:
    """The valid AllInOne submission with one entry per task (so that mutations reach every field)."""
    seg = obj["seg"][0] if isinstance(obj["seg"], list) else obj["seg"]
    first = next(iter(seg))
    return {**obj, "cls": obj["cls"][:1] if isinstance(obj["cls"], list) else obj["cls"],
            "dec": obj["dec"][:2], "seg": [{first: seg[first]}] if isinstance(obj["seg"], list) else {first: seg[first]}}


@FUZZ
@given(data=st.data())
def test_allinone_submission_validator(submissions, data):
    ref, valid = submissions["allinone"]
    obj = data.draw(_mutations(_small_allinone(valid)) | json_values)
    _validated(json.dumps(obj).encode(), ref, "allinone")


@FUZZ
@given(data=st.data())
def test_retrieval_submission_reader(submissions, data):
    ref, valid = submissions["retrieval"]
    obj = data.draw(_mutations(valid) | json_values)
    _validated(json.dumps(obj).encode(), ref, "retrieval")


@FUZZ
@given(data=st.binary(max_size=80) | st.text(max_size=40).map(str.encode))
def test_submission_raw_bytes(submissions, data):
    for track, (ref, _) in submissions.items():
        _validated(data, ref, track)
