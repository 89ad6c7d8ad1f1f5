"""Quirks of real releases, each through the stages it touches: repeated query lines, CRLF and blank
lines in test_text.txt and dec/test.txt, and grayscale, CMYK and EXIF-rotated JPEGs."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from rawrelease import write_raw_release
from tiny_settings import tiny
from trafficfm.allinone.datasets import read_rgb
from trafficfm.data.canonical import Dataset
from trafficfm.data.convert_allinone import convert_allinone
from trafficfm.data.convert_retrieval import convert_retrieval
from trafficfm.data.images import probe
from trafficfm.retrieval.data import load_image
from trafficfm.retrieval.predict import check_rankings
from trafficfm.retrieval.rank import kind_codes, rank, rankings_frame
from trafficfm.submission.package import package_retrieval
from trafficfm.submission.reference import RetrievalReference
from trafficfm.submission.validate import validate_retrieval_file

SETTINGS = tiny()
LAYOUT = SETTINGS.data.layout
# test_text.txt as the real file has it: queries repeated (the real file repeats some), CRLF line
# ends, blank lines (not queries), no final newline
QUERIES = ["This is a white Audi.", "A man, who's walking.", "This is a white Audi.", "A red car.",
           "A man, who's walking."]
TEST_TEXT = "\r\n".join([QUERIES[0], "", QUERIES[1], QUERIES[2], "", "", QUERIES[3], QUERIES[4]])
DEC_TEST = "\r\nt2.jpg\r\n\r\nt0.jpg\r\nt1.jpg\r\n\r\n"  # blank lines first, between and last


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("quirks")
    write_raw_release(root)
    (root / "test" / "test_text.txt").write_bytes(TEST_TEXT.encode())
    (root / "track1_test_data" / "dec" / "test.txt").write_bytes(DEC_TEST.encode())
    return root


def test_dec_test_list_with_crlf_and_blank_lines_numbers_the_images(release, tmp_path):
    convert_allinone(release, tmp_path / "aio", LAYOUT.allinone, 5, "fail")
    coco = json.loads(Dataset.open(tmp_path / "aio").coco_path("test").read_text())
    # ids are the 1-based positions of the names, blank lines not counted
    assert [(im["id"], Path(im["file_name"]).name) for im in coco["images"]] == [(1, "t2.jpg"), (2, "t0.jpg"),
                                                                                 (3, "t1.jpg")]


def _text_features(texts: list[str]) -> torch.Tensor:
    """A fixed embedding per text (equal texts, equal features), as a text encoder gives."""
    rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=16)
            for t in texts]
    return torch.nn.functional.normalize(torch.tensor(np.array(rows), dtype=torch.float32), dim=1)


def test_repeated_queries_survive_conversion_ranking_packaging_and_validation(release, tmp_path):
    convert_retrieval(release, tmp_path / "ret", LAYOUT.retrieval, "fail")
    data = Dataset.open(tmp_path / "ret")
    queries = data.table("test_queries")
    assert list(queries["text"]) == QUERIES and list(queries["query"]) == list(range(len(QUERIES)))

    images = data.table("test_images")
    gallery = torch.nn.functional.normalize(torch.randn(len(images), 16, generator=torch.Generator().manual_seed(0)),
                                            dim=1)
    top = rank(_text_features(list(queries["text"])), gallery, kind_codes(images["kind"].tolist()),
               {"name": "none"}, k=len(images)).numpy()
    frame = rankings_frame(queries, images["name"].tolist(), top)
    check_rankings(frame, queries, len(images))
    frame.to_csv(tmp_path / "rankings.csv", index=False)

    zip_path = tmp_path / "retrieval.zip"
    report = package_retrieval(tmp_path / "rankings.csv", tmp_path / "ret", "test", zip_path, None,
                               SETTINGS.replace(f"submission.retrieval.top_k={len(images)}"))
    assert report.valid, report.to_text()
    results = json.loads(zipfile.ZipFile(zip_path).read(zipfile.ZipFile(zip_path).namelist()[0]))["results"]
    assert [r["text"] for r in results] == QUERIES  # one entry per line, repeats included, in file order
    assert results[0]["image_names"] == results[2]["image_names"]  # a repeated query ranks the same
    assert results[1]["image_names"] == results[4]["image_names"]
    again, _ = validate_retrieval_file(zip_path, RetrievalReference.from_dataset(tmp_path / "ret", "test"),
                                       len(images))
    assert again.valid, again.to_text()
    # a submission that merges the repeats is refused: the organisers compare the texts line by line
    merged = tmp_path / "merged.json"
    merged.write_text(json.dumps({"results": [r for i, r in enumerate(results) if i not in (2, 4)]}))
    refused, _ = validate_retrieval_file(merged, RetrievalReference.from_dataset(tmp_path / "ret", "test"),
                                         len(images))
    assert not refused.valid


COLOUR = (200, 30, 60)


def _jpeg(path: Path, kind: str) -> None:
    image = Image.new("RGB", (40, 20), COLOUR)
    image.paste((20, 220, 40), (0, 0, 10, 5))  # a mark in the stored top-left corner
    if kind == "grayscale":
        image.convert("L").save(path, quality=95)
    elif kind == "cmyk":
        image.convert("CMYK").save(path, quality=95)
    else:  # stored 40 x 20, tagged "rotate 90 degrees clockwise to display"
        exif = Image.Exif()
        exif[0x0112] = 6
        image.save(path, quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("kind", ["grayscale", "cmyk", "exif-rotated"])
def test_jpeg_flavours_read_as_stored_rgb_everywhere(tmp_path, kind):
    """Every reader sees the same RGB pixels as stored, which is what the sizes in the organisers'
    annotations and the label maps refer to: the converter's probe, the AllInOne reader and the
    retrieval loader agree on size and colour (an EXIF orientation tag is not applied)."""
    path = tmp_path / f"{kind}.jpg"
    _jpeg(path, kind)
    assert probe(path) == (40, 20)
    pixels = read_rgb(path)
    assert pixels.shape == (20, 40, 3) and pixels.dtype == np.uint8
    expected = np.array(COLOUR if kind != "grayscale" else [round(0.299 * 200 + 0.587 * 30 + 0.114 * 60)] * 3)
    assert np.abs(pixels[15, 30].astype(int) - expected).max() <= 4, pixels[15, 30]
    assert np.abs(pixels[2, 3].astype(int) - pixels[15, 30].astype(int)).sum() > 60  # the mark, where stored
    loaded = load_image(str(path), 40)
    assert loaded.shape == (3, 40, 40)
    stretched = np.asarray(Image.open(path).convert("RGB").resize((40, 40), Image.BILINEAR))
    assert np.abs(loaded.permute(1, 2, 0).numpy().astype(int) - stretched.astype(int)).max() <= 1
