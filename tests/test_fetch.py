"""trafficfm.data.fetch against a real HTTP server on 127.0.0.1 with switchable faults."""

from __future__ import annotations

import hashlib
import io
import random
import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from trafficfm.data.fetch import FetchError, fetch, read_sha256sums, sha256_file

CONTENT = random.Random(0).randbytes(300_000)
SHA = hashlib.sha256(CONTENT).hexdigest()
WRONG = bytes(b ^ 0xFF for b in CONTENT)  # same length, so only the checksum can catch it


@dataclass
class Faults:
    fail_first: int = 0  # answer the first N requests with fail_status
    fail_status: int = 503
    cut_after: int | None = None  # first request: announce the full length, send only K bytes
    stall_after: int | None = None  # first request: send K bytes, then hang until released
    wrong_content: bool = False
    not_found: bool = False
    ignore_range: bool = False  # answer 200 with the whole body even to a Range request
    requests: list[dict] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        faults: Faults = self.server.faults
        number = len(faults.requests)
        record = {"range": self.headers.get("Range"), "status": None, "sent": 0}
        faults.requests.append(record)
        if faults.not_found or number < faults.fail_first:
            record["status"] = 404 if faults.not_found else faults.fail_status
            self.send_response(record["status"])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = WRONG if faults.wrong_content else CONTENT
        start, status = 0, 200
        if record["range"] and not faults.ignore_range:
            start, status = int(re.fullmatch(r"bytes=(\d+)-", record["range"]).group(1)), 206
            if start >= len(body):
                record["status"] = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        payload = body[start:]
        record["status"] = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if number == 0 and faults.stall_after is not None:
            self.wfile.write(payload[: faults.stall_after])
            record["sent"] = faults.stall_after
            faults.release.wait(5)
            return
        if number == 0 and faults.cut_after is not None:
            payload = payload[: faults.cut_after]  # returning closes the connection (HTTP/1.0)
        self.wfile.write(payload)
        record["sent"] = len(payload)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that time out leave broken pipes behind; expected here


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """No proxies, and any connection other than to 127.0.0.1 fails the test."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    real_connect = socket.socket.connect

    def connect(sock, address):
        assert address[0] == "127.0.0.1", f"test tried to reach {address}"
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def server():
    faults = Faults()
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.faults = faults
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    faults.url = f"http://127.0.0.1:{httpd.server_address[1]}/track2_val.tar"
    yield faults
    faults.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sleeps():
    return []


def _fetch(url, dest, sha=SHA, sleeps=None, **kwargs):
    kwargs.setdefault("backoff_s", 0.5)
    return fetch(url, dest, sha, sleep=(sleeps if sleeps is not None else []).append, **kwargs)


def _leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_plain_download(server, tmp_path, sleeps):
    dest = _fetch(server.url, tmp_path / "a.tar", sleeps=sleeps)
    assert dest == tmp_path / "a.tar" and dest.read_bytes() == CONTENT
    assert _leftovers(tmp_path) == ["a.tar"]
    assert server.requests == [{"range": None, "status": 200, "sent": len(CONTENT)}]
    assert sleeps == []


def test_resume_after_cut(server, tmp_path, sleeps):
    server.cut_after = 100_000
    dest = _fetch(server.url, tmp_path / "a.tar", sleeps=sleeps)
    assert dest.read_bytes() == CONTENT
    first, second = server.requests
    assert first == {"range": None, "status": 200, "sent": 100_000}
    assert second == {"range": "bytes=100000-", "status": 206, "sent": len(CONTENT) - 100_000}
    assert sleeps == [0.5]
    assert _leftovers(tmp_path) == ["a.tar"]


def test_resume_partial_from_an_earlier_run(server, tmp_path):
    (tmp_path / "a.tar.part").write_bytes(CONTENT[:123_456])
    _fetch(server.url, tmp_path / "a.tar")
    assert server.requests == [{"range": "bytes=123456-", "status": 206, "sent": len(CONTENT) - 123_456}]
    assert (tmp_path / "a.tar").read_bytes() == CONTENT


def test_complete_partial_gets_416_and_is_verified(server, tmp_path):
    (tmp_path / "a.tar.part").write_bytes(CONTENT)
    _fetch(server.url, tmp_path / "a.tar")
    assert server.requests == [{"range": f"bytes={len(CONTENT)}-", "status": 416, "sent": 0}]
    assert _leftovers(tmp_path) == ["a.tar"]


def test_server_ignoring_range_restarts(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "a.tar.part").write_bytes(b"stale bytes that must not survive")
    _fetch(server.url, tmp_path / "a.tar")
    assert server.requests[0]["range"] == "bytes=33-" and server.requests[0]["status"] == 200
    assert (tmp_path / "a.tar").read_bytes() == CONTENT


@pytest.mark.parametrize("status", [503, 500, 429, 408])
def test_retry_with_doubling_backoff(server, tmp_path, sleeps, status):
    server.fail_first, server.fail_status = 3, status
    _fetch(server.url, tmp_path / "a.tar", sleeps=sleeps, retries=5)
    assert (tmp_path / "a.tar").read_bytes() == CONTENT
    assert [r["status"] for r in server.requests] == [status] * 3 + [200]
    assert sleeps == [0.5, 1.0, 2.0]


def test_retries_exhausted(server, tmp_path, sleeps):
    server.fail_first = 100
    with pytest.raises(FetchError, match=re.escape(server.url) + ".*3 failed attempt.*503"):
        _fetch(server.url, tmp_path / "a.tar", sleeps=sleeps, retries=3)
    assert len(server.requests) == 3 and sleeps == [0.5, 1.0]
    assert not (tmp_path / "a.tar").exists()


def test_timeout_is_retried_and_resumed(server, tmp_path, sleeps):
    server.stall_after = 50_000
    _fetch(server.url, tmp_path / "a.tar", sleeps=sleeps, timeout_s=0.3)
    assert (tmp_path / "a.tar").read_bytes() == CONTENT
    assert len(server.requests) == 2
    assert server.requests[1] == {"range": "bytes=50000-", "status": 206, "sent": len(CONTENT) - 50_000}


def test_checksum_mismatch(server, tmp_path, sleeps):
    server.wrong_content = True
    with pytest.raises(FetchError) as caught:
        _fetch(server.url, tmp_path / "a.tar", sleeps=sleeps)
    message = str(caught.value)
    assert server.url in message and SHA in message and hashlib.sha256(WRONG).hexdigest() in message
    assert _leftovers(tmp_path) == []  # neither dest nor .part
    assert len(server.requests) == 1


def test_404_fails_fast(server, tmp_path, sleeps):
    server.not_found = True
    with pytest.raises(FetchError, match=re.escape(server.url) + ".*404"):
        _fetch(server.url, tmp_path / "a.tar", sleeps=sleeps)
    assert len(server.requests) == 1 and sleeps == []
    assert _leftovers(tmp_path) == []


def test_existing_valid_dest_is_kept(server, tmp_path):
    dest = tmp_path / "a.tar"
    dest.write_bytes(CONTENT)
    mtime = dest.stat().st_mtime_ns
    assert _fetch(server.url, dest) == dest
    assert server.requests == [] and dest.stat().st_mtime_ns == mtime


def test_existing_invalid_dest_is_replaced(server, tmp_path):
    dest = tmp_path / "a.tar"
    dest.write_bytes(b"corrupt")
    _fetch(server.url, dest)
    assert dest.read_bytes() == CONTENT and len(server.requests) == 1


def test_progress_bar_on_a_tty(server, tmp_path, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    _fetch(server.url, tmp_path / "a.tar", progress=True)
    assert "a.tar.part" in sys.stderr.getvalue()


def test_file_url(tmp_path):
    source = tmp_path / "src dir" / "archive.tar"  # a space: the URL is percent-encoded
    source.parent.mkdir()
    source.write_bytes(CONTENT)
    out = tmp_path / "out"
    dest = _fetch(source.as_uri(), out / "a.tar")
    assert dest.read_bytes() == CONTENT and _leftovers(out) == ["a.tar"]
    with pytest.raises(FetchError, match="SHA-256 mismatch"):
        _fetch(source.as_uri(), out / "b.tar", sha="0" * 64)
    with pytest.raises(FetchError, match="cannot copy"):
        _fetch((tmp_path / "missing.tar").as_uri(), out / "c.tar")
    assert _leftovers(out) == ["a.tar"]


def test_no_hash_and_bad_hash(tmp_path):
    source = tmp_path / "archive.tar"
    source.write_bytes(CONTENT)
    assert _fetch(source.as_uri(), tmp_path / "a.tar", sha=None).read_bytes() == CONTENT
    with pytest.raises(ValueError, match="64 hex digits"):
        _fetch(source.as_uri(), tmp_path / "b.tar", sha="abc")
    with pytest.raises(FetchError, match="unsupported URL scheme"):
        _fetch("ftp://127.0.0.1/x.tar", tmp_path / "c.tar")


def test_sha256_helpers(tmp_path):
    (tmp_path / "x.tar").write_bytes(CONTENT)
    assert sha256_file(tmp_path / "x.tar") == SHA
    other = hashlib.sha256(b"y").hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{SHA.upper()}  x.tar\n\n{other} *./y tar.gz\n")
    assert read_sha256sums(tmp_path / "SHA256SUMS") == {"x.tar": SHA, "y tar.gz": other}
    (tmp_path / "BAD").write_text("nonsense\n")
    with pytest.raises(FetchError, match="BAD:1"):
        read_sha256sums(tmp_path / "BAD")
