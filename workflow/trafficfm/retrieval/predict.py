"""Test rankings: every test query against every test image, top 10, in the documented form.

``results/retrieval/test_rankings.csv`` (docs/data-contract.md): columns ``query`` (0-based line
index in the query file), ``text`` (the query exactly as given), ``rank`` (1..10) and ``name``
(the image's file name as the organisers name it), ten rows per query in query order, ten distinct
names per query. No query is ever dropped or merged, even when queries outnumber images; only a
gallery of fewer than ten images gives fewer rows per query (with a warning).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .. import atomic
from ..ensemble import soft
from ..data.canonical import Dataset
from ..device import resolve_device
from .evaluate import encode_images, encode_texts
from .rank import COLUMNS, kind_codes, rank, rankings_frame
from .model import load_model

log = logging.getLogger(__name__)

TOP_K = 10


def check_rankings(frame: pd.DataFrame, queries: pd.DataFrame, gallery_size: int) -> None:
    k = min(TOP_K, gallery_size)
    if list(frame.columns) != COLUMNS:
        raise AssertionError(f"columns {list(frame.columns)} != {COLUMNS}")
    if len(frame) != len(queries) * k:
        raise AssertionError(f"{len(frame)} rows for {len(queries)} queries x {k}")
    per_query = frame.groupby("query", sort=False)
    if not (per_query["name"].nunique() == k).all():
        raise AssertionError("a query has repeated names")
    if not np.array_equal(frame["query"].to_numpy()[::k], queries["query"].to_numpy()):
        raise AssertionError("queries are not in file order")


def predict(dataset_dir: str | Path, model_path: str | Path, rerank_path: str | Path | None,
            out_csv: str | Path, settings, workers: int = 0,
            embeddings_out: str | Path | None = None) -> pd.DataFrame:
    """Rank the test gallery for every test query with the ``retrieval`` settings (``eval``,
    ``device``) and the re-ranking decided on validation (``rerank_path``; None = plain).
    ``embeddings_out``: also write the embeddings (the soft predictions an ensemble fuses)."""
    cfg = settings["eval"]
    dataset = Dataset.open(dataset_dir)
    images = dataset.table("test_images")
    queries = dataset.table("test_queries")
    if images.empty:
        raise ValueError(f"{dataset_dir}/test_images.csv lists no images")
    method = {"name": "none"}
    if rerank_path:
        decision = json.loads(Path(rerank_path).read_text())
        method = decision["method"]
    log.info("ranking %d images for %d queries; re-ranking: %s", len(images), len(queries), method)
    if len(images) < TOP_K:
        log.warning("only %d test images: each query gets %d names, not %d", len(images), len(images), TOP_K)

    model = load_model(model_path, resolve_device(settings["device"]))
    image_features = encode_images(model, images["path"].tolist(), cfg, workers)
    text_features = encode_texts(model, queries["text"].tolist())
    if embeddings_out:
        soft.write_embeddings(embeddings_out, image_features.numpy(), text_features.numpy())
    top = rank(text_features, image_features, kind_codes(images["kind"].tolist()), method, k=TOP_K,
               chunk=int(cfg["chunk"])).numpy()
    frame = rankings_frame(queries, images["name"].tolist(), top)
    check_rankings(frame, queries, len(images))
    atomic.write_csv(out_csv, frame)
    log.info("wrote %d rows to %s", len(frame), out_csv)
    return frame
