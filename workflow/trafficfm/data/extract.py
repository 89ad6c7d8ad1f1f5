"""Safe, all-or-nothing extraction of release archives, and locating a user's extracted release.

An archive is unpacked into a hidden staging folder inside ``dest_root`` (same filesystem, so the
final moves are renames) and its top-level entries are only moved into place once it all unpacked:
an interrupted or rejected extraction leaves no half-written tree for a later step to trust.
"""

from __future__ import annotations

import gzip
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import uuid
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import TrafficfmError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)
# What a corrupt or truncated archive raises, besides the archive modules' own errors.
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)


class ExtractError(TrafficfmError):
    """An archive that is unreadable, unsafe, empty or of an unknown kind."""


class ReleaseNotFound(ExtractError, FileNotFoundError):
    """No archive, or no release tree, where the config says it is."""


def extract(archive: str | Path, dest_root: str | Path) -> list[str]:
    """Extract ``archive`` (.tar, .tar.gz, .tgz, .zip, ...) into ``dest_root``; return its top-level names.

    Existing entries of ``dest_root`` with those names are replaced; other entries are left alone.
    """
    archive, dest_root = Path(archive), Path(dest_root)
    lower = archive.name.lower()
    if lower.endswith(ZIP_SUFFIXES):
        unpack = _unzip
    elif lower.endswith(TAR_SUFFIXES):
        unpack = _untar
    else:
        raise ExtractError(f"{archive}: unknown archive kind (expected one of "
                           f"{', '.join(TAR_SUFFIXES + ZIP_SUFFIXES)})")
    if not archive.is_file():
        raise ReleaseNotFound(f"{archive}: no such archive")
    dest_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_root))
    try:
        try:
            unpack(archive, staging)
        except _CORRUPT as exc:
            raise ExtractError(f"{archive}: {type(exc).__name__}: {exc}") from exc
        tops = sorted(os.listdir(staging))
        if not tops:
            raise ExtractError(f"{archive}: the archive is empty")
        for top in tops:
            _swap_in(staging / top, dest_root / top)
        return tops
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _untar(archive: Path, into: Path) -> None:
    if not hasattr(tarfile, "data_filter"):
        raise ExtractError(f"{archive}: this Python has no tarfile extraction filters "
                           "(need 3.10.12+ or 3.11.4+); refusing to extract without them")
    with tarfile.open(archive, "r:*") as tar:
        # "data": no absolute or '..' paths, no links leaving the tree, no devices, sane modes
        tar.extractall(into, filter="data")


def _unzip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        # zipfile would silently rewrite such names; a release should never contain them, so refuse
        for name in zf.namelist():
            path = name.replace("\\", "/")
            if path.startswith("/") or re.match(r"[A-Za-z]:", path) or ".." in PurePosixPath(path).parts:
                raise ExtractError(f"{archive}: unsafe member {name!r} (absolute path or '..')")
        zf.extractall(into)


def _swap_in(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is renamed away first, then deleted."""
    if not (target.exists() or target.is_symlink()):
        os.rename(new, target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old)
    else:
        old.unlink()


def find_release_tree(local_dir: str | Path, expected_tops: list[str]) -> Path:
    """Return the folder holding all ``expected_tops`` folders: ``local_dir`` itself or one level down."""
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise ReleaseNotFound(f"{local_dir}: not a folder (data.local_dir)")

    def complete(folder: Path) -> bool:
        return all((folder / top).is_dir() for top in expected_tops)

    if complete(local_dir):
        return local_dir
    subdirs = sorted(p for p in local_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    matches = [p for p in subdirs if complete(p)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ReleaseNotFound(f"{local_dir}: several folders hold a release "
                                f"({', '.join(p.name for p in matches)}); point data.local_dir at one")
    found = [f"{local_dir}: {_listing(local_dir)}"]
    found += [f"{p.name}/: {_listing(p)}" for p in subdirs[:10]]
    raise ReleaseNotFound(
        f"{local_dir}: expected the folders {', '.join(expected_tops)} here or one level down; "
        "found " + "; ".join(found))


def _listing(folder: Path, limit: int = 12) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    if not names:
        return "(empty)"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
