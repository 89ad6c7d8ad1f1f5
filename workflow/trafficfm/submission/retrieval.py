"""Build the retrieval submission from the ranking the inference stage wrote.

Input (docs/data-contract.md): ``results/retrieval/test_rankings.csv`` with columns ``query``
(0-based index among the queries), ``text``, ``rank`` (1..k) and ``name``. Output, queries in the
order of ``test_text.txt``::

    {"results": [{"text": "This is a grey Chery Sedan.", "image_names": ["vehicle_0001886.jpg", ...]}]}

Every query of the reference gets an entry, in reference order, with the reference's text (the
text the organisers compare); its names are the ranking's rows for that query index in rank order,
cut at ``top_k``. A query without rows gets an empty list and a ranking whose text differs from the
reference's is reported as a problem: both make the packager refuse, through :mod:`.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import jsonio
from .reference import RetrievalReference

COLUMNS = ("query", "text", "rank", "name")


@dataclass
class RetrievalSubmission:
    results: list[tuple[str, list[str]]]
    problems: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> bytes:
        items = (jsonio.dumps({"text": text, "image_names": names}) for text, names in self.results)
        return f'{{"results":{jsonio.json_list(items)}}}\n'.encode("ascii")

    def to_obj(self) -> dict:
        return {"results": [{"text": t, "image_names": list(n)} for t, n in self.results]}


def build_retrieval(rankings_csv: str | Path, reference: RetrievalReference, top_k: int = 10) -> RetrievalSubmission:
    table = pd.read_csv(rankings_csv, keep_default_na=False, dtype={"text": str, "name": str})
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{rankings_csv}: missing column(s) {missing} (expected {', '.join(COLUMNS)})")
    problems = []
    numeric = {c: pd.to_numeric(table[c], errors="coerce") for c in ("query", "rank")}
    bad_query = numeric["query"].isna() | numeric["rank"].isna()
    if bad_query.any():
        first = int(bad_query.to_numpy().nonzero()[0][0])
        problems.append((f"{Path(rankings_csv).name} row {first + 2}",
                         f"{int(bad_query.sum())} row(s) with a non-numeric query or rank"))
        table = table[~bad_query]
    table = table.assign(query=table["query"].astype(int), rank=table["rank"].astype(int))
    table = table.sort_values(["query", "rank"], kind="stable")
    groups = {q: g for q, g in table.groupby("query", sort=False)}
    results = []
    for index, text in enumerate(reference.queries):
        group = groups.get(index)
        if group is None:
            results.append((text, []))
            continue
        texts = set(group["text"])
        if texts != {text}:
            shown = sorted(texts - {text})[:1]
            problems.append((f"{Path(rankings_csv).name} query {index}",
                             f"ranking text {shown[0]!r} is not query {index}'s text {text!r}"))
        results.append((text, list(group["name"])[:top_k]))
    extra = sorted(q for q in groups if not 0 <= q < len(reference.queries))
    if extra:
        problems.append((Path(rankings_csv).name,
                         f"query index(es) {extra[:5]} out of range 0..{len(reference.queries) - 1}"))
    return RetrievalSubmission(results, problems)
