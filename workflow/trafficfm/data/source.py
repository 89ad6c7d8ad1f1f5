"""Where the raw release comes from: demo archives, URLs, or a local folder.

The Snakefile asks this module which archives to fetch (and from which URL) and which folder is
each track's release root, so the three sources differ only here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError
from ..paths import ARCHIVE_DIR, DEMO_DIR, RELEASE_DIR  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class Archive:
    key: str
    track: str
    file: str
    url: str
    sha256: str | None  # None: taken from the demo's SHA256SUMS, or unchecked for a local file


@dataclass(frozen=True)
class ReleasePlan:
    source: str
    archives: dict[str, Archive]  # empty when a local folder holds the extracted trees
    roots: dict[str, str]  # track -> release root

    def track_archives(self, track: str) -> list[Archive]:
        return [a for a in self.archives.values() if a.track == track]


def expected_tops(track: str, layout: dict) -> list[str]:
    """Top-level folders a track's extracted release holds."""
    if track == "allinone":
        return [layout["allinone"]["train_dir"], layout["allinone"]["test_dir"]]
    retrieval = layout["retrieval"]
    splits = list(retrieval["train_splits"])
    test_top = Path(retrieval["test_queries"]).parts[0]
    return splits + ([test_top] if test_top not in splits else [])


def plan_release(data_cfg: dict, workdir: str | Path = ".") -> ReleasePlan:
    workdir = Path(workdir).resolve()
    source = data_cfg["source"]
    entries = data_cfg["archives"]
    if source == "demo":
        archives = {k: Archive(k, e["track"], e["file"], (workdir / DEMO_DIR / e["file"]).as_uri(), None)
                    for k, e in entries.items()}
    elif source == "urls":
        missing = [k for k, e in entries.items() if not e["url"]]
        if missing:
            raise ConfigError(f"data.source is 'urls' but data.archives.{missing[0]}.url is not set "
                             f"(also missing: {', '.join(missing[1:]) or 'none'})")
        archives = {k: Archive(k, e["track"], e["file"], e["url"], e["sha256"]) for k, e in entries.items()}
    elif source == "local":
        local = data_cfg["local_dir"]
        if not local:
            raise ConfigError("data.source is 'local' but data.local_dir is not set")
        local = Path(local).expanduser().resolve()
        if not local.is_dir():
            raise ConfigError(f"data.local_dir {local} is not a folder")
        if all((local / e["file"]).is_file() for e in entries.values()):
            archives = {k: Archive(k, e["track"], e["file"], (local / e["file"]).as_uri(), e["sha256"])
                        for k, e in entries.items()}
        else:
            from .extract import find_release_tree

            tracks = sorted({e["track"] for e in entries.values()})
            roots = {t: str(find_release_tree(local, expected_tops(t, data_cfg["layout"]))) for t in tracks}
            return ReleasePlan(source, {}, roots)
    else:
        raise ConfigError(f"data.source must be demo, urls or local, not {source!r}")
    roots = {a.track: str(workdir / RELEASE_DIR) for a in archives.values()}
    return ReleasePlan(source, archives, roots)
