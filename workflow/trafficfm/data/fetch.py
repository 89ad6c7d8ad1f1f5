"""Fetch release archives from https://, http:// and file:// URLs, resumably and verified.

The archives are large and the servers flaky, so a download resumes from ``<dest>.part`` with an
HTTP Range request and retries transient failures with exponential back-off. ``dest`` only appears,
by atomic rename, once the whole file matches its SHA-256, so an existing ``dest`` can be trusted.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from ..config import ConfigError
from ..errors import TrafficfmError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "trafficfm-fetch/0.1"
MAX_RETRY_AFTER_S = 300.0  # cap on a server's Retry-After, so a silly hint cannot stall a run for hours
_HEX64 = re.compile(r"[0-9a-f]{64}")


class FetchError(TrafficfmError):
    """A fetch that failed for good: bad URL or status, checksum mismatch, retries exhausted."""


class _Retry(Exception):
    """A transient failure worth another attempt; ``retry_after`` is the server's hint in seconds."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_sha256sums(path: str | Path) -> dict[str, str]:
    """Parse a ``sha256sum`` file (``<hash>  <name>`` or ``<hash> *<name>``) into ``{name: hash}``."""
    sums: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line.strip())
        if not match:
            raise FetchError(f"{path}:{number}: not a sha256sum line: {line!r}")
        digest, name = match.group(1).lower(), match.group(2)
        name = name[2:] if name.startswith("./") else name  # `sha256sum ./x.tar` writes "./x.tar"
        if sums.get(name, digest) != digest:
            raise FetchError(f"{path}:{number}: {name} listed twice with different hashes")
        sums[name] = digest
    return sums


def fetch(
    url: str,
    dest: str | Path,
    sha256: str | None,
    *,
    retries: int = 5,
    backoff_s: float = 2.0,
    timeout_s: float = 60,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Fetch ``url`` to ``dest`` and return ``dest``.

    An existing ``dest`` that matches ``sha256`` (or any existing ``dest`` when ``sha256`` is None)
    is kept as is. ``retries`` is the number of failed attempts in a row, without new bytes, before
    giving up; the waits between them are ``backoff_s``, ``2 * backoff_s``, ... ``timeout_s`` is the
    socket timeout per request. ``sleep`` is injectable for tests.
    """
    dest = Path(dest)
    expected = _normalise_sha256(url, sha256)
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    if dest.exists():
        if expected is None or sha256_file(dest) == expected:
            return dest
        log.warning("%s exists but does not match its SHA-256; fetching it again", dest)
    part = dest.with_suffix(dest.suffix + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme == "file":
        _copy_file(url, part, progress)
    elif scheme in ("http", "https"):
        _download(url, part, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s,
                  progress=progress, sleep=sleep)
    else:
        raise FetchError(f"{url}: unsupported URL scheme {scheme!r} (use https://, http:// or file://)")
    if expected is not None:
        actual = sha256_file(part)
        if actual != expected:
            part.unlink(missing_ok=True)  # never resume from, or trust, bytes known to be wrong
            raise FetchError(f"{url}: SHA-256 mismatch: expected {expected}, got {actual}; "
                             "the download was deleted")
    os.replace(part, dest)
    return dest


def _normalise_sha256(url: str, sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower().removeprefix("sha256:")
    if not _HEX64.fullmatch(value):
        raise ConfigError(f"{url}: sha256 must be 64 hex digits, got {sha256!r}")
    return value


def _bar(total: int | None, initial: int, desc: str, progress: bool) -> tqdm:
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # stderr replaced or closed (daemons, some runners)
        tty = False
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr, disable=not (progress and tty), leave=False)


def _copy_file(url: str, part: Path, progress: bool) -> None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.netloc not in ("", "localhost"):
        raise FetchError(f"{url}: file:// URLs on another host are not supported")
    source = Path(urllib.request.url2pathname(parsed.path))
    try:
        with open(source, "rb") as src, open(part, "wb") as out:
            with _bar(os.fstat(src.fileno()).st_size, 0, part.name, progress) as bar:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise FetchError(f"{url}: cannot copy {source}: {exc}") from exc


def _download(url: str, part: Path, *, retries: int, backoff_s: float, timeout_s: float,
              progress: bool, sleep: Callable[[float], None]) -> None:
    opener = urllib.request.build_opener()  # built per call: honours the proxy environment of now
    high_water = part.stat().st_size if part.exists() else 0
    failures = 0
    while True:
        try:
            _attempt(opener, url, part, timeout_s, progress)
            return
        except _Retry as exc:
            size = part.stat().st_size if part.exists() else 0
            if size > high_water:  # a slow but working link must not use up the retries
                high_water, failures = size, 0
            failures += 1
            if failures >= retries:
                raise FetchError(f"{url}: giving up after {failures} failed attempt(s) in a row; "
                                 f"last error: {exc}") from exc
            delay = backoff_s * 2 ** (failures - 1)
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, MAX_RETRY_AFTER_S))
            log.warning("%s: %s; retry %d/%d in %.1f s", url, exc, failures, retries - 1, delay)
            sleep(delay)


def _attempt(opener: urllib.request.OpenerDirector, url: str, part: Path, timeout_s: float,
             progress: bool) -> None:
    """One request; resumes ``part``. Raises _Retry for transient failures, FetchError for fatal."""
    have = part.stat().st_size if part.exists() else 0
    # identity: Content-Length must count the bytes we store, or truncation goes unnoticed
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = opener.open(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:
            total = _range_total(exc.headers.get("Content-Range", ""))
            if total is None or total == have:
                return  # the partial is already whole; the checksum has the last word
            part.unlink()
            raise _Retry(f"HTTP 416 for a {have}-byte partial of a {total}-byte file; restarting")
        if exc.code in (408, 429) or exc.code >= 500:
            raise _Retry(f"HTTP {exc.code} {exc.reason}", _retry_after(exc.headers.get("Retry-After")))
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:  # URLError, resets, timeouts, bad status lines
        raise _Retry(f"{type(exc).__name__}: {exc}") from exc

    with response:
        if response.status == 206:
            match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                part.unlink()
                raise _Retry(f"unusable Content-Range {response.headers.get('Content-Range')!r} "
                             f"for a resume at byte {have}; restarting")
            mode = "ab"
        else:
            if have:
                log.info("%s: server ignored the Range request; restarting from byte 0", url)
            have, mode = 0, "wb"
        length_header = response.headers.get("Content-Length", "")
        length = int(length_header) if length_header.isdigit() else None
        received = 0
        with open(part, mode) as out, _bar(None if length is None else have + length, have,
                                           part.name, progress) as bar:
            while True:
                try:
                    # read1: what has arrived, so a stall loses nothing already received
                    chunk = response.read1(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Retry(f"{type(exc).__name__} after {received} bytes: {exc}") from exc
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        # http.client returns b"" rather than raising when the peer closes early
        if length is not None and received != length:
            raise _Retry(f"connection closed after {received} of {length} bytes")


def _range_total(content_range: str) -> int | None:
    match = re.fullmatch(r"bytes (?:\*|\d+-\d+)/(\d+)", content_range.strip())
    return int(match.group(1)) if match else None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: ignored, the back-off applies
        return None
