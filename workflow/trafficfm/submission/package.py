"""Package submissions: build the JSON, validate those exact bytes, then write a reproducible zip.

A zip is written only when the validator accepts its JSON, and atomically (a temporary file in the
target folder, renamed over the target), so ``results/submissions/*.zip`` is always a complete,
valid submission or absent. The validation report (JSON) is written beside it in both cases.

Reproducibility: the same predictions give the same bytes. The JSON's formatting is fixed
(:mod:`.jsonio`), its order comes from the canonical data, and the zip entry carries a fixed
timestamp (1980-01-01 00:00:00), fixed permissions (0644), a fixed "made by" system (Unix) and fixed
compression (deflate, level 6: level 9 takes five times longer on this JSON and
saves nothing); there is no archive comment and no extra field. (Byte identity holds
for the same zlib; another zlib build may compress differently but the JSON inside is identical.)
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from pathlib import Path

from .. import atomic
from ..errors import TrafficfmError
from .allinone import build_allinone
from .reference import AllInOneReference, RetrievalReference
from .retrieval import build_retrieval
from .validate import Report, parse_payload, validate_allinone, validate_retrieval, write_report

log = logging.getLogger(__name__)

ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
ZIP_COMPRESSION = zipfile.ZIP_DEFLATED
ZIP_LEVEL = 6


class SubmissionRejected(TrafficfmError, RuntimeError):
    """The built submission failed validation; no zip was written. ``report`` says why."""

    def __init__(self, report: Report, report_path: Path | None):
        where = f" (report: {report_path})" if report_path else ""
        super().__init__(f"submission rejected, no zip written{where}:\n{report.to_text(max_listed=50)}")
        self.report = report


def zip_bytes_into(target: str | Path, member: str, payload: bytes) -> str:
    """Write ``payload`` as the single entry ``member`` of the zip ``target``; returns its sha256."""
    if "/" in member or "\\" in member or not member.endswith(".json"):
        raise ValueError(f"the JSON's name must be a plain file name ending in .json, not {member!r}")
    info = zipfile.ZipInfo(member, date_time=ZIP_DATE_TIME)
    info.compress_type = ZIP_COMPRESSION
    info.create_system = 3  # Unix, whatever the machine
    info.external_attr = 0o100644 << 16
    with atomic.atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            archive.writestr(info, payload, compress_type=ZIP_COMPRESSION, compresslevel=ZIP_LEVEL)
        with zipfile.ZipFile(tmp) as archive:  # read back: what goes out is what was validated
            if archive.read(member) != payload:
                raise OSError(f"{target}: the zip does not read back as written")
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    return digest


def _finish(report: Report, payload: bytes, zip_path: Path, member: str, report_path: Path | None,
            max_listed: int) -> Report:
    report.source = str(zip_path)
    report.member = member
    report.sha256 = hashlib.sha256(payload).hexdigest()
    if not report.valid:
        if zip_path.exists():  # an older zip no longer matches the predictions
            log.warning("removing %s: it was built from earlier predictions", zip_path)
            zip_path.unlink()
        if report_path:
            write_report(report, report_path, max_listed)
        raise SubmissionRejected(report, report_path)
    digest = zip_bytes_into(zip_path, member, payload)
    report.summary["json_bytes"] = len(payload)
    report.summary["zip_sha256"] = digest
    if report_path:
        write_report(report, report_path, max_listed)
    log.info("%s", report.to_text())
    return report


def package_allinone(predictions_dir: str | Path, dataset_dir: str | Path, split: str, zip_path: str | Path,
                     report_path: str | Path | None, settings, threads: int = 1) -> Report:
    """Predictions of ``split`` (``<predictions_dir>/{cls,det,seg}_<split>*``, docs/data-contract.md)
    -> validated ``zip_path`` (+ the report), as the settings say: ``submission`` (JSON name, form,
    small contours, box tolerance, violations listed) and ``allinone.inference.det_max_per_image``."""
    options, predictions = settings["submission"], Path(predictions_dir)
    json_name, form = options["allinone"]["json_name"], options["allinone"]["form"]
    box_tolerance, max_listed = float(options["box_tolerance_px"]), int(options["max_listed"])
    reference = AllInOneReference.from_dataset(dataset_dir, split)
    submission = build_allinone(predictions / f"cls_{split}.csv", predictions / f"det_{split}.json",
                                predictions / f"seg_{split}", reference, form=form,
                                max_dets_per_image=int(settings["allinone"]["inference"]["det_max_per_image"]),
                                small_contours=options["allinone"]["small_contours"],
                                box_tolerance=box_tolerance, threads=threads)
    payload = submission.to_json()
    problems, dropped = submission.problems, submission.dropped_boxes
    del submission  # the polygons now live in the payload; free them before parsing it back
    report = Report("allinone", split)
    for where, what in problems:
        report.add("prediction", where, what)
    obj = parse_payload(payload, report)
    if obj is not None:
        validate_allinone(obj, reference, form, box_tolerance, report)
    del obj
    if dropped:
        report.summary["dec_dropped"] = dropped
    return _finish(report, payload, Path(zip_path), json_name, Path(report_path) if report_path else None,
                   max_listed)


def package_retrieval(rankings_csv: str | Path, dataset_dir: str | Path, split: str, zip_path: str | Path,
                      report_path: str | Path | None, settings) -> Report:
    """A ranking of ``split`` -> validated ``zip_path`` (+ the report), as the ``submission``
    settings say (JSON name, names per query, violations listed)."""
    options = settings["submission"]
    json_name, top_k, max_listed = options["retrieval"]["json_name"], options["retrieval"]["top_k"], options["max_listed"]
    reference = RetrievalReference.from_dataset(dataset_dir, split)
    submission = build_retrieval(rankings_csv, reference, top_k)
    payload = submission.to_json()
    report = Report("retrieval", split)
    for where, what in submission.problems:
        report.add("prediction", where, what)
    obj = parse_payload(payload, report)
    if obj is not None:
        validate_retrieval(obj, reference, top_k, report)
    return _finish(report, payload, Path(zip_path), json_name, Path(report_path) if report_path else None,
                   max_listed)
