"""Cheap checks that an image file exists and is readable, and its size, for whole folders."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def list_images(folder: Path) -> list[str]:
    """Sorted names of the image files directly inside ``folder`` (empty if it does not exist)."""
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))


def probe(path: Path) -> tuple[int, int] | str:
    """``(width, height)`` from the image header, or a message saying why it cannot be read.

    Only the header is parsed (PIL decodes lazily), which catches missing, empty, non-image and
    header-corrupt files at a few tens of microseconds each.
    """
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        return "image file is missing"
    except Exception as error:  # PIL raises several types for corrupt data
        return f"image is unreadable ({type(error).__name__}: {error})"


def probe_many(paths: Iterable[Path], workers: int = 8) -> list[tuple[int, int] | str]:
    """:func:`probe` over many files; threads overlap the file-system latency."""
    paths = list(paths)
    if len(paths) < 64:
        return [probe(p) for p in paths]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(probe, paths, chunksize=256))
