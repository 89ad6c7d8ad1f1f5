"""Where the submission stage reads and writes (the contract in docs/data-contract.md).

Kept in the package so that the rule file holds rules only, and tests and scripts share the names.
"""

from __future__ import annotations

SUBMISSIONS_DIR = "results/submissions"
ALLINONE_PREDICTIONS = "results/allinone/predictions"
RETRIEVAL_RESULTS = "results/retrieval"
TRACKS = ("allinone", "retrieval")


def submission_outputs() -> list[str]:
    """The leaderboard zips and their validation reports (targets for ``rule all``)."""
    return [f"{SUBMISSIONS_DIR}/{track}.{ext}" for track in TRACKS for ext in ("zip", "validation.json")]


def validation_score_outputs(split: str = "val") -> list[str]:
    """The organisers' metrics of a labelled split's predictions, packaged like the submissions."""
    return [f"{SUBMISSIONS_DIR}/{split}/{track}_scores.json" for track in TRACKS]
