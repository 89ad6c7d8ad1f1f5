"""``trafficfm-validate``: check (and optionally score) a submission file before uploading it.

    trafficfm-validate allinone results/submissions/allinone.zip --data results/data/allinone
    trafficfm-validate retrieval results/submissions/retrieval.zip --data results/data/retrieval
    trafficfm-validate allinone results/submissions/val/allinone.zip --split val --score

SUBMISSION is the JSON file or the zip holding it. A report (JSON) is written beside it as
``<name>.validation.json`` unless ``--report`` names another path or ``--no-report`` is given.
Exit status: 0 valid, 1 violations found, 2 the check could not run (missing file or data, a
``--score`` on a split without labels).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import atomic
from ..paths import TRACK_DATA
from .reference import AllInOneReference, RetrievalReference
from .validate import validate_allinone_file, validate_retrieval_file

EXIT_VALID, EXIT_INVALID, EXIT_ERROR = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trafficfm-validate",
        description="Check a VIMER traffic-scene challenge submission (JSON or zip) against the canonical data.",
        epilog="Exit status: 0 valid, 1 violations, 2 could not check.",
    )
    tracks = parser.add_subparsers(dest="track", required=True, metavar="{allinone,retrieval}")
    for track, help_text in (("allinone", "the AllInOne JSON (cls, dec, seg)"),
                             ("retrieval", "the retrieval JSON (results)")):
        sub = tracks.add_parser(track, help=help_text, description=f"Validate {help_text}.")
        sub.add_argument("submission", type=Path, help="the submission JSON or the zip holding it")
        sub.add_argument("--data", type=Path, default=Path(TRACK_DATA[track]),
                         help=f"canonical {track} dataset folder (default: {TRACK_DATA[track]})")
        sub.add_argument("--split", default="test",
                         help="split the submission answers (default: test; a labelled split such as val "
                              "can also be scored)")
        sub.add_argument("--report", type=Path, help="where to write the JSON report "
                                                    "(default: beside the submission, <name>.validation.json)")
        sub.add_argument("--no-report", action="store_true", help="write no report file")
        sub.add_argument("--score", action="store_true",
                         help="also compute the organisers' metrics (labelled splits only)")
        sub.add_argument("--truth", type=Path,
                         help="the demo release's hidden test truth folder (resources/demo/truth): score the "
                              "test split with it, as the organisers score theirs (implies --score)")
        sub.add_argument("--max-listed", type=int, default=25, help="violations printed (all are counted)")
        if track == "allinone":
            sub.add_argument("--form", choices=["any", "list", "object"], default="any",
                             help="require one form of cls/seg (default: accept either)")
            sub.add_argument("--box-tolerance", type=float, default=1.0,
                             help="pixels a box may leave its image by (default: 1.0)")
        else:
            sub.add_argument("--top-k", type=int, default=10, help="names required per query (default: 10)")
    return parser


def default_report_path(submission: Path) -> Path:
    return submission.with_name(f"{submission.stem}.validation.json")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if not args.submission.is_file():
            raise FileNotFoundError(f"{args.submission}: no such file")
        if args.track == "allinone":
            reference = AllInOneReference.from_dataset(args.data, args.split)
            reference = reference.with_truth(args.truth) if args.truth else reference
            report, obj = validate_allinone_file(args.submission, reference, args.form, args.box_tolerance)
        else:
            reference = RetrievalReference.from_dataset(args.data, args.split)
            reference = reference.with_truth(args.truth) if args.truth else reference
            report, obj = validate_retrieval_file(args.submission, reference, args.top_k)
    except (FileNotFoundError, KeyError, ValueError, OSError) as error:
        print(f"trafficfm-validate: cannot check {args.submission}: {error}", file=sys.stderr)
        return EXIT_ERROR

    print(report.to_text(max_listed=args.max_listed))
    result = report.to_dict(max_listed=max(200, args.max_listed))
    status = EXIT_VALID if report.valid else EXIT_INVALID
    if (args.score or args.truth) and report.valid:
        from .score import NotScorable, score_allinone, score_retrieval

        try:
            scores = score_allinone(obj, reference) if args.track == "allinone" else score_retrieval(obj, reference)
        except NotScorable as error:
            print(f"trafficfm-validate: cannot score: {error}", file=sys.stderr)
            status = EXIT_ERROR
        else:
            result["scores"] = scores
            shown = {k: round(v, 4) for k, v in scores.items() if isinstance(v, float)}
            print("scores: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    if not args.no_report:
        target = args.report or default_report_path(args.submission)
        atomic.write_text(target, json.dumps(result, indent=1) + "\n")
        print(f"report: {target}")
    return status


if __name__ == "__main__":
    sys.exit(main())
