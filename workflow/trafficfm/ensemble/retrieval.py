"""Fusion of retrieval ensemble members: every member's query x gallery cosine similarities are
normalised per query (zero mean, unit standard deviation over the gallery: members' similarity
scales differ, a fine-tuned model's logit scale spreads them more) and averaged, then the exact
top k is taken. Similarities are computed by blocks of ``chunk`` queries, so memory stays at
members x chunk x gallery floats whatever the number of queries."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .. import atomic
from ..retrieval.rank import _break_ties, block_topk, rankings_frame
from . import soft

log = logging.getLogger(__name__)


def _normalised(sims: torch.Tensor) -> torch.Tensor:
    mean = sims.mean(dim=1, keepdim=True)
    std = sims.std(dim=1, keepdim=True).clamp(min=1e-6)
    return (sims - mean) / std


def _fingerprint(member: tuple[torch.Tensor, torch.Tensor]) -> str:
    h = hashlib.sha1()
    for t in member:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def fuse_topk(members: list[tuple[torch.Tensor, torch.Tensor]], k: int = 10,
              chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, gallery indices) of the top ``k`` per query of the mean normalised similarity.

    ``members``: (query embeddings (Q, D_m), gallery embeddings (G, D_m)) per member, L2-normalised;
    members may have different embedding sizes but must embed the same queries and gallery.
    """
    n_query, n_gallery = members[0][0].shape[0], members[0][1].shape[0]
    for q, g in members:
        if q.shape[0] != n_query or g.shape[0] != n_gallery:
            raise ValueError("ensemble members rank different queries or galleries")
    k = min(k, n_gallery)
    scores = torch.empty(n_query, k)
    index = torch.empty(n_query, k, dtype=torch.long)
    # one canonical summation order (by the members' content), so the order in which members are
    # listed never changes a float sum, hence never the ranking
    members = sorted(members, key=_fingerprint)
    galleries = [g.float().T.contiguous() for _, g in members]
    for start in range(0, n_query, chunk):
        stop = min(start + chunk, n_query)
        fused = None
        for (q, _), g in zip(members, galleries):
            part = _normalised(q[start:stop].float() @ g)
            fused = part if fused is None else fused.add_(part)
        fused /= len(members)
        values, indices = block_topk(fused, k)
        values, indices = _break_ties(values, indices)
        scores[start:stop], index[start:stop] = values, indices
    return scores, index


def _members(paths: list[str | Path]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for path in paths:
        images, texts = soft.read_embeddings(path)
        out.append((torch.from_numpy(texts.astype(np.float32)), torch.from_numpy(images.astype(np.float32))))
    return out


def evaluate_ensemble(dataset_dir: str | Path, embeddings: list[str | Path], outputs: dict, eval_cfg: dict,
                      chunk: int = 2048, split: str = "val") -> dict:
    """Score the fused ranking of the members' validation embeddings like a member's
    (:func:`..retrieval.evaluate.evaluate`): ``outputs`` = paths of ``metrics``, ``per_kind``,
    ``rerank`` (no re-ranking: the fused ranking is used as it is) and ``rankings``."""
    from ..retrieval.data import load_pairs
    from ..retrieval.evaluate import metrics_for, validation_queries
    from ..retrieval.relevance import AttributeCodec

    frame = load_pairs(dataset_dir, split)
    lines = validation_queries(frame, "line")
    scored = np.ones(len(lines), dtype=bool)
    if eval_cfg["val_queries"] == "caption":
        scored = ~lines.duplicated(["text", "attribute"]).to_numpy()
    queries = lines[scored].reset_index(drop=True)
    members = _members(embeddings)
    for texts, images in members:
        if texts.shape[0] != len(lines) or images.shape[0] != len(frame):
            raise ValueError(f"member embeddings do not match {split}: {texts.shape[0]} queries, "
                             f"{images.shape[0]} images for {len(lines)} lines")
    _, top = fuse_topk(members, k=10, chunk=chunk)
    result = metrics_for(AttributeCodec(), queries, frame, top[torch.from_numpy(scored)])
    overall = result["overall"]
    metrics = {"map10": overall["map10"], "map10_before": None, "recall@1": overall["recall@1"],
               "recall@5": overall["recall@5"], "recall@10": overall["recall@10"], "members": len(members)}
    rerank = {"method": {"name": "none"}, "kept": False, "split": split,
              "reason": "an ensemble ranks the fused similarities without re-ranking"}
    per_kind = {"queries": eval_cfg["val_queries"], "gallery_images": len(frame), "rerank": rerank["method"],
                "after": result, "after_no_rerank": result, "before": None}
    names = [PurePosixPath(p).name for p in frame["image"]]
    atomic.write_csv(outputs["rankings"], rankings_frame(lines.assign(query=np.arange(len(lines))), names,
                                                         top.numpy()))
    atomic.write_json(outputs["per_kind"], per_kind)
    atomic.write_json(outputs["rerank"], rerank)
    atomic.write_json(outputs["metrics"], metrics)
    log.info("ensemble of %d: val mAP@10 %.4f; R@1 %.3f R@5 %.3f R@10 %.3f", len(members), metrics["map10"],
             metrics["recall@1"], metrics["recall@5"], metrics["recall@10"])
    return metrics


def predict_ensemble(dataset_dir: str | Path, embeddings: list[str | Path], out_csv: str | Path,
                     chunk: int = 2048):
    """Test rankings (docs/data-contract.md) of the fused similarities of the members' test embeddings."""
    from ..data.canonical import Dataset
    from ..retrieval.predict import TOP_K, check_rankings

    dataset = Dataset.open(dataset_dir)
    images, queries = dataset.table("test_images"), dataset.table("test_queries")
    _, top = fuse_topk(_members(embeddings), k=TOP_K, chunk=chunk)
    frame = rankings_frame(queries, images["name"].tolist(), top.numpy())
    check_rankings(frame, queries, len(images))
    atomic.write_csv(out_csv, frame)
    log.info("ensemble of %d: wrote %d rows to %s", len(embeddings), len(frame), out_csv)
    return frame
