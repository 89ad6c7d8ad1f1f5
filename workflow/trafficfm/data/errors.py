"""Record-level data errors with a fail-or-skip policy.

Converters report every bad record through an :class:`ErrorCollector`; with ``on_error="fail"`` the
conversion stops after the scan with one message listing each problem (file, line or record, field,
what is wrong), with ``on_error="skip"`` the records are dropped and the warnings are counted in the
manifest. Scanning everything before failing saves the user one rerun per typo.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..errors import TrafficfmError

log = logging.getLogger(__name__)

MAX_LISTED = 25


class DataError(TrafficfmError, ValueError):
    """Raised when a release holds records that cannot be converted."""


@dataclass(frozen=True)
class Problem:
    file: str
    where: str  # "line 12", "annotations[3] (id=17)", ...
    what: str

    def __str__(self) -> str:
        return f"{self.file}, {self.where}: {self.what}"


@dataclass
class ErrorCollector:
    on_error: str = "fail"
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ("fail", "skip"):
            raise ValueError(f"on_error must be 'fail' or 'skip', not {self.on_error!r}")

    def add(self, file: str, where: str, what: str) -> None:
        problem = Problem(str(file), where, what)
        self.problems.append(problem)
        if self.on_error == "skip":
            log.warning("skipped: %s", problem)

    def __len__(self) -> int:
        return len(self.problems)

    def raise_if_failing(self, context: str) -> None:
        if self.on_error == "fail" and self.problems:
            listed = "\n  ".join(str(p) for p in self.problems[:MAX_LISTED])
            more = len(self.problems) - MAX_LISTED
            tail = f"\n  ... and {more} more" if more > 0 else ""
            raise DataError(
                f"{context}: {len(self.problems)} bad record(s)"
                f" (set data.on_error: skip to drop them instead):\n  {listed}{tail}"
            )

    def summary(self) -> dict:
        return {
            "count": len(self.problems),
            "first": [str(p) for p in self.problems[:MAX_LISTED]],
        }
