"""A misbehaving HTTP server on 127.0.0.1 (short bodies, resets, 416 for a complete partial file), hostile and
oversized archives, and an interrupted Imagenette extraction."""
import hashlib
import http.server
import io
import os
import socket
import struct
import tarfile
import threading

import pytest

from minilab.data import imagenette
from minilab.data.folder import DataError
from minilab.data.imagenette import download, fetch_imagenette, safe_extract

PAYLOAD = os.urandom(200_000)
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Flaky(http.server.BaseHTTPRequestHandler):
    """Honours Range; `mode` decides how the body ends: 'ok', 'short' (closes cleanly halfway), 'reset'."""
    mode = "ok"
    requests = []

    def do_GET(self):
        rng = self.headers.get("Range")
        Flaky.requests.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start >= len(PAYLOAD):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.mode == "ok":
            self.wfile.write(body)
            return
        self.wfile.write(body[:len(body) // 2])
        self.wfile.flush()
        if self.mode == "reset":   # close with RST instead of FIN, as a dropped connection looks
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(self.connection.detach())
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    Flaky.mode, Flaky.requests = "ok", []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/imagenette2-160.tgz"
    httpd.shutdown()
    httpd.server_close()


def test_short_body_is_detected_kept_and_resumed(tmp_path, flaky):
    dest = tmp_path / "f.tgz"
    Flaky.mode = "short"
    with pytest.raises(DataError, match=r"closed the connection after 100,000 of 200,000 bytes.*kept"):
        download(flaky, str(dest), MD5, progress=False)
    assert (tmp_path / "f.tgz.part").stat().st_size == 100_000
    Flaky.mode = "ok"
    download(flaky, str(dest), MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD and Flaky.requests[-1] == "bytes=100000-"


def test_connection_reset_is_a_clear_error_and_keeps_the_bytes(tmp_path, flaky):
    Flaky.mode = "reset"
    with pytest.raises(DataError, match="broke off after .* kept — run again to resume"):
        download(flaky, str(tmp_path / "f.tgz"), MD5, progress=False)
    assert (tmp_path / "f.tgz.part").stat().st_size < len(PAYLOAD)   # kept (what arrived before the reset)


def test_complete_part_file_is_taken_as_complete(tmp_path, flaky):
    (tmp_path / "f.tgz.part").write_bytes(PAYLOAD)
    download(flaky, str(tmp_path / "f.tgz"), MD5, progress=False)
    assert (tmp_path / "f.tgz").read_bytes() == PAYLOAD and Flaky.requests == []


def test_complete_part_without_md5_is_finished_by_the_416_reply(tmp_path, flaky):
    (tmp_path / "f.tgz.part").write_bytes(PAYLOAD)
    download(flaky, str(tmp_path / "f.tgz"), None, progress=False)
    assert (tmp_path / "f.tgz").read_bytes() == PAYLOAD and Flaky.requests == [f"bytes={len(PAYLOAD)}-"]


def _tar(path, members):
    """members: (name, kind, payload-or-linkname)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = data
                tar.addfile(info)
    return str(path)


@pytest.mark.parametrize("members", [
    [("a", "sym", "."), ("a/z", "sym", "../outside")],          # a link resolved through an earlier link
    [("a", "sym", "sub/.."), ("b", "file", b"x")],                # '..' in a link target
    [("d", "dir", None), ("d/../../escape", "file", b"x")],
])
def test_links_chained_through_links_are_refused(tmp_path, members):
    archive = _tar(tmp_path / "x.tgz", members)
    (tmp_path / "t").mkdir()
    with pytest.raises(DataError, match="refusing"):
        safe_extract(archive, str(tmp_path / "t"))
    assert not (tmp_path / "outside").exists() and not (tmp_path / "escape").exists()


def test_too_many_members_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(imagenette, "MAX_MEMBERS", 5)
    archive = _tar(tmp_path / "x.tgz", [(f"f{i}", "file", b"x") for i in range(8)])
    with pytest.raises(DataError, match="more than 5 members"):
        safe_extract(archive, str(tmp_path))


def test_truncated_archive_is_a_clear_error(tmp_path):
    archive = _tar(tmp_path / "x.tgz", [(f"f{i}", "file", os.urandom(20_000)) for i in range(5)])
    data = open(archive, "rb").read()
    open(archive, "wb").write(data[:len(data) // 2])
    (tmp_path / "t").mkdir()
    with pytest.raises(DataError, match="damaged|could not be extracted"):
        safe_extract(archive, str(tmp_path / "t"))


def test_interrupted_extraction_is_redone_not_used(tmp_path, monkeypatch, capsys):
    files = [(f"imagenette2-160/{split}/n01/{i}.JPEG", "file", b"img") for split in ("train", "val") for i in range(3)]
    archive = _tar(tmp_path / "imagenette2-160.tgz", files)
    monkeypatch.setitem(imagenette.VARIANTS, "imagenette2-160",
                        ("imagenette2-160.tgz", imagenette.md5sum(archive)))
    # what a killed extraction leaves: both split folders, part of val, no completion marker
    for split, count in (("train", 3), ("val", 1)):
        os.makedirs(tmp_path / "imagenette2-160" / split / "n01")
        for i in range(count):
            (tmp_path / "imagenette2-160" / split / "n01" / f"{i}.JPEG").write_bytes(b"img")
    root = fetch_imagenette("imagenette2-160", str(tmp_path), progress=False, base_url="http://127.0.0.1:9/")
    assert "has no completion marker (.minilab-complete)" in capsys.readouterr().out   # said, not silent
    assert len(os.listdir(os.path.join(root, "val", "n01"))) == 3
    assert os.path.isfile(os.path.join(root, ".minilab-complete"))
    assert imagenette.find_local_imagenette(str(tmp_path)) == root
    assert not [d for d in os.listdir(tmp_path) if d.startswith(".extracting")]
