"""The demo release's hidden test truth: its file names, and readers that label a test reference.

The organisers score the test split on labels they never publish. The demo generator writes the
same labels to a folder outside the release (``resources/demo/truth`` in the workflow), so the
pipeline can score its own leaderboard zips as the organisers would and show how far its
validation metrics are from the test scores. File names here are the one place they are named.
"""

from __future__ import annotations

import json
from pathlib import Path

# retrieval
RET_GALLERY = "test_label.txt"  # image$attribute$caption per test image
RET_QUERIES = "test_query_label.txt"  # query$attribute, one per line of test/test_text.txt
# AllInOne
AIO_DIR = "allinone"
AIO_CLS = f"{AIO_DIR}/cls_test.txt"  # "<image> <class id>" per test image
AIO_DET = f"{AIO_DIR}/dec_test.json"  # COCO; image id = 1-based line of dec/test.txt (the submission's id)
AIO_SEG = f"{AIO_DIR}/seg_test"  # <image stem>.png label maps (train ids, 255 = ignore)
README = "README.txt"
TOP_LEVEL = {RET_GALLERY, RET_QUERIES, AIO_DIR, README}

TEXT = f"""Hidden ground truth of the demo release's test splits (never part of a release archive).

{RET_GALLERY}        image$attribute$caption for every image of test/test_images, vehicles first;
                      name field as in the train/val label files (pedestrians without .jpg).
{RET_QUERIES}  query$attribute, one line per line of test/test_text.txt, same order.
A query's relevant images follow the organisers' rule: equal attribute text, or for pedestrians
the same first value (gender) and a 1 wherever the query's vector has one.
{AIO_CLS}  "<image> <class id>" for every image of track1_test_data/cls/test.
{AIO_DET} COCO boxes of track1_test_data/dec/test; image id = the image's 1-based line in
                      dec/test.txt, as the submission numbers them.
{AIO_SEG}/      one label map (PNG, train ids, 255 = ignore) per image of seg/images/test.
"""


def missing(truth_dir: str | Path, track: str) -> list[str]:
    """The truth files of ``track`` that ``truth_dir`` lacks (empty: it can be scored)."""
    names = (AIO_CLS, AIO_DET, AIO_SEG) if track == "allinone" else (RET_GALLERY, RET_QUERIES)
    return [n for n in names if not (Path(truth_dir) / n).exists()]


def allinone_labels(truth_dir: str | Path) -> tuple[dict[str, int], dict, Path]:
    """(image name -> class id, test COCO, folder of the label maps)."""
    root = Path(truth_dir)
    cls = {}
    for line in (root / AIO_CLS).read_text().splitlines():
        if line.strip():
            name, label = line.split()
            cls[name] = int(label)
    return cls, json.loads((root / AIO_DET).read_text()), root / AIO_SEG


def retrieval_labels(truth_dir: str | Path) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """([(query, attribute)] in test_text.txt order, gallery image file name -> attribute)."""
    root = Path(truth_dir)
    queries = [tuple(line.split("$")) for line in (root / RET_QUERIES).read_text().splitlines() if line]
    gallery = {}
    for line in (root / RET_GALLERY).read_text().splitlines():
        if line:
            name, attribute, _ = line.split("$", 2)
            gallery[name if name.endswith(".jpg") else f"{name}.jpg"] = attribute
    return queries, gallery
