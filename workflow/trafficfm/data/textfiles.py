"""Tolerant reading of the organisers' text files: BOM, CRLF, blank lines, no final newline."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .errors import DataError


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(1-based line number, stripped line)`` for each non-blank line of a text file."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text (byte {data[error.start]:#04x})") from None
    # str.splitlines also splits on \x1c-\x1e and \x85; the release only uses \n and \r\n.
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        line = line.strip()
        if line:
            yield number, line
