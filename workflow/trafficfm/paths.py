"""Where every stage reads and writes, and which split plays which role: the workflow's vocabulary.

The rule files, the ``trafficfm`` command and the tests take their paths from here, relative to
the working folder (Snakemake's ``--directory``). docs/data-contract.md describes the files.
"""

from __future__ import annotations

from dataclasses import dataclass

DEMO_DIR = "resources/demo"
ARCHIVE_DIR = "resources/archives"
RELEASE_DIR = "resources/release"

DATA_DIR = "results/data"
ALLINONE_DATA = f"{DATA_DIR}/allinone"
RETRIEVAL_DATA = f"{DATA_DIR}/retrieval"
DATA_REPORT = f"{DATA_DIR}/report"
TRACK_DATA = {"allinone": ALLINONE_DATA, "retrieval": RETRIEVAL_DATA}
ALLINONE_MANIFEST = f"{ALLINONE_DATA}/manifest.json"
RETRIEVAL_MANIFEST = f"{RETRIEVAL_DATA}/manifest.json"

ALLINONE_DIR = "results/allinone"
ALLINONE_MODEL = f"{ALLINONE_DIR}/model.pt"
ALLINONE_PREDICTIONS = f"{ALLINONE_DIR}/predictions"

RETRIEVAL_DIR = "results/retrieval"
RETRIEVAL_MODEL = f"{RETRIEVAL_DIR}/model.pt"

SUBMISSIONS_DIR = "results/submissions"
TRACKS = ("allinone", "retrieval")
TRACK_DIR = {"allinone": ALLINONE_DIR, "retrieval": RETRIEVAL_DIR}

# Experiments (config section experiments): each experiment and ensemble writes the track's files
# under <track dir>/experiments/<name>/, training checkpoints in its checkpoints/ (not rule
# outputs, so Snakemake never deletes them: an interrupted or --forcerun training resumes from the
# newest when the settings are unchanged). The track's paths above hold copies of the selected
# experiment's files; <track dir>/selection.json names it.
EXPERIMENTS_DIR = {track: f"{TRACK_DIR[track]}/experiments" for track in TRACKS}
COMPARISON_DIR = "results/experiments"


def experiment_dir(track: str, name: str) -> str:
    return f"{EXPERIMENTS_DIR[track]}/{name}"


def selection(track: str) -> str:
    return f"{TRACK_DIR[track]}/selection.json"


@dataclass(frozen=True)
class Splits:
    """The split names of a track by role: training, validation (predicted, packaged and scored
    like a submission) and test (the leaderboard's)."""

    train: str
    val: str
    test: str


def splits(data, track: str) -> Splits:
    """The roles of ``data.layout.<track>``'s splits: its ``train_splits`` are training then
    validation; the test split is the AllInOne layout's ``test_split`` (retrieval: ``test``)."""
    layout = data["layout"][track]
    train_splits = list(layout["train_splits"])
    test = layout["test_split"] if track == "allinone" else "test"
    return Splits(train=train_splits[0], val=train_splits[-1], test=test)


def allinone_tables(data) -> list[str]:
    """The canonical AllInOne tables of every split (docs/data-contract.md)."""
    layout = data["layout"]["allinone"]
    names = [*layout["train_splits"], layout["test_split"]]
    return [f"{ALLINONE_DATA}/{task}_{split}.{ext}"
            for task, ext in (("cls", "csv"), ("det", "json"), ("seg", "csv")) for split in names]


def retrieval_tables(data) -> list[str]:
    """The canonical retrieval tables: pairs of each labelled split, test images and queries."""
    names = [*data["layout"]["retrieval"]["train_splits"], "test_images", "test_queries"]
    return [f"{RETRIEVAL_DATA}/{name}.csv" for name in names]


def allinone_predictions(split: str) -> dict[str, str]:
    """The prediction files of one split (docs/data-contract.md, 'Predictions')."""
    return {"cls": f"{ALLINONE_PREDICTIONS}/cls_{split}.csv", "det": f"{ALLINONE_PREDICTIONS}/det_{split}.json",
            "seg": f"{ALLINONE_PREDICTIONS}/seg_{split}"}


def rankings(split: str) -> str:
    """Retrieval rankings of a split (``test_rankings.csv`` is the submission's)."""
    return f"{RETRIEVAL_DIR}/{split}_rankings.csv"


def submission_zip(track: str, split: str | None = None) -> str:
    """The leaderboard zip of a track (``split`` None) or a labelled split's zip packaged the same way."""
    return f"{SUBMISSIONS_DIR}/{track}.zip" if split is None else f"{SUBMISSIONS_DIR}/{split}/{track}.zip"


def submission_outputs() -> list[str]:
    """The leaderboard zips and their validation reports (targets for ``rule all``)."""
    return [f"{SUBMISSIONS_DIR}/{track}.{ext}" for track in TRACKS for ext in ("zip", "validation.json")]


def scores(track: str, split: str) -> str:
    """The organisers' metrics of a labelled split's predictions, packaged like a submission."""
    return f"{SUBMISSIONS_DIR}/{split}/{track}_scores.json"


def validation_score_outputs(data) -> list[str]:
    """Both tracks' scores of their validation split (targets for ``rule all``)."""
    return [scores(track, splits(data, track).val) for track in TRACKS]


def test_score_outputs(data) -> list[str]:
    """Both leaderboard zips scored on the demo release's hidden test truth (targets for ``rule all``
    when the data is the demo's: a real release has no test labels)."""
    return [scores(track, splits(data, track).test) for track in TRACKS] if data["source"] == "demo" else []
