"""MM-IMDb acquisition: resumable fetch (file:// and local HTTP), checks, safe unpacking, root."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path

import pytest
from PIL import Image

from data.__main__ import main as data_main
from data.download import (MARKER, MMIMDB_URL, DownloadError, UnsafeArchive, fetch, find_root,
                           part_path, unpack)
from data.mmimdb import manifest_from_mmimdb

MOVIES = {"0000011": ("Drama", "Romance"), "0000022": ("Comedy",), "0000033": ("Horror", "Thriller")}


@pytest.fixture
def archive(tmp_path) -> Path:
    """A tiny .tar.gz in MM-IMDb's layout: mmimdb/{split.json, dataset/<id>.json|.jpeg}."""
    src = tmp_path / "src" / "mmimdb"
    (src / "dataset").mkdir(parents=True)
    for k, (sid, genres) in enumerate(MOVIES.items()):
        meta = {"title": f"Movie {k}", "genres": list(genres), "plot": [f"The plot of movie {k}."]}
        (src / "dataset" / f"{sid}.json").write_text(json.dumps(meta))
        Image.new("RGB", (16, 24), (40 * k, 90, 200)).save(src / "dataset" / f"{sid}.jpeg", "JPEG")
    split = {"train": ["0000011"], "dev": ["0000022"], "test": ["0000033"]}
    (src / "split.json").write_text(json.dumps(split))
    path = tmp_path / "mirror" / "mmimdb.tar.gz"
    path.parent.mkdir()
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname="mmimdb")
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_resume_verify_unpack_and_manifest(archive, tmp_path):
    out = tmp_path / "resources" / "imdb" / "mmimdb.tar.gz"
    data = archive.read_bytes()
    out.parent.mkdir(parents=True)
    part_path(out).write_bytes(data[: len(data) // 2])  # an interrupted earlier download
    got = fetch(archive.as_uri(), out, size=len(data), sha256=sha(archive))
    assert got == out and out.read_bytes() == data and not part_path(out).exists()
    # a second call finds the verified file and does not need the source
    assert fetch((tmp_path / "gone.tar.gz").as_uri(), out, size=len(data)) == out

    dest = tmp_path / "resources" / "imdb"
    root = unpack(out, dest)
    assert root == dest / "mmimdb" and (root / "split.json").is_file()
    assert json.loads((dest / MARKER).read_text())["root"] == "mmimdb"
    assert find_root(dest) == root and not (dest / ".unpacking").exists()
    assert unpack(out, dest) == root  # marker: not unpacked again

    frame, counts = manifest_from_mmimdb(find_root(dest))
    assert frame["id"].tolist() == list(MOVIES) and counts["samples"] == 3 and counts["no_image"] == 0
    assert frame.set_index("id").loc["0000011", "labels"] == "Drama|Romance"
    assert frame["split"].tolist() == ["train", "dev", "test"]
    assert all(Image.open(p).size == (16, 24) for p in frame["image"])


def test_resume_appends_to_the_part_file(archive, tmp_path):
    """The part's bytes are kept (not refetched): a corrupt prefix shows up in the sha check."""
    out = tmp_path / "a.tar.gz"
    data = archive.read_bytes()
    part_path(out).write_bytes(b"\0" * 100)
    with pytest.raises(DownloadError, match="sha256") as err:
        fetch(archive.as_uri(), out, size=len(data), sha256=sha(archive))
    bad = tmp_path / "a.tar.gz.bad"
    assert str(bad) in str(err.value) and bad.read_bytes() == b"\0" * 100 + data[100:]
    assert not part_path(out).exists() and not out.exists()
    # the rerun starts over and succeeds
    assert fetch(archive.as_uri(), out, size=len(data), sha256=sha(archive)).read_bytes() == data


def test_download_writes_progress_lines_of_what_is_left(archive, tmp_path, capsys):
    """Plain progress lines in MB (core/progress.py), the resumed offset said, never a \\r."""
    from core.progress import parse

    out = tmp_path / "b.tar.gz"
    data = archive.read_bytes()
    part_path(out).write_bytes(data[:100])
    fetch(archive.as_uri(), out, size=len(data))
    err = capsys.readouterr().err
    reports = [r for r in map(parse, err.splitlines()) if r]
    assert "\r" not in err and reports and reports[-1].finished and reports[-1].unit == "MB"
    assert reports[-1].task == "download b.tar.gz (resumed at 0.0 MB)"
    assert reports[-1].done == reports[-1].total == round((len(data) - 100) / 1e6, 1)


def test_size_mismatch(archive, tmp_path):
    n = archive.stat().st_size
    out = tmp_path / "b.tar.gz"
    with pytest.raises(DownloadError, match=f"incomplete: {n} of {n + 10} bytes. Rerun to resume"):
        fetch(archive.as_uri(), out, size=n + 10)
    assert part_path(out).stat().st_size == n and not out.exists()  # kept for a resume
    part_path(out).unlink()
    with pytest.raises(DownloadError, match=f"has {n} bytes, expected {n - 1}"):
        fetch(archive.as_uri(), out, size=n - 1)
    assert not part_path(out).exists() and not out.exists()
    with pytest.raises(DownloadError, match=f"has sha256 {sha(archive)}, expected 00ff"):
        fetch(archive.as_uri(), tmp_path / "c.tar.gz", sha256="00FF")
    # a part longer than the expected size starts over
    part_path(out).write_bytes(b"x" * (n + 5))
    assert fetch(archive.as_uri(), out, size=n).read_bytes() == archive.read_bytes()


def test_missing_source_and_offline_say_what_to_do(tmp_path):
    out = tmp_path / "resources" / "imdb" / "mmimdb.tar.gz"
    with pytest.raises(DownloadError) as err:
        fetch(MMIMDB_URL, out)  # DMMS_OFFLINE=1 in tests: no network access is attempted
    msg = str(err.value)
    assert MMIMDB_URL in msg and "8.1 GB" in msg and str(out) in msg
    assert "`root:`" in msg and "config/config.yaml" in msg and "DMMS_OFFLINE" in msg
    with pytest.raises(DownloadError, match="does not exist") as err:
        fetch((tmp_path / "nowhere.tar.gz").as_uri(), out, size=1234)
    assert str(out) in str(err.value)


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    honour_range = True
    ranges: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        asked = self.headers.get("Range", "")
        type(self).ranges.append(asked)
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked and self.honour_range else 0
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("honour_range", [True, False])
def test_http_resume(archive, tmp_path, monkeypatch, honour_range):
    monkeypatch.setenv("DMMS_OFFLINE", "0")
    data = archive.read_bytes()
    handler = type("Handler", (_RangeHandler,), {"payload": data, "honour_range": honour_range, "ranges": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "h.tar.gz"
        part_path(out).write_bytes(data[:200])
        url = f"http://127.0.0.1:{server.server_address[1]}/mmimdb.tar.gz"
        assert fetch(url, out, sha256=sha(archive)).read_bytes() == data  # size from the server
        assert handler.ranges == ["bytes=200-"]
    finally:
        server.shutdown()
        server.server_close()


def _tar_with(path: Path, member: tarfile.TarInfo, payload: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("mmimdb/split.json")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"{}"))
        member.size = len(payload) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(payload) if member.isfile() else None)
    return path


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def _fifo(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    return info


@pytest.mark.parametrize("member, reason", [
    (tarfile.TarInfo("../evil.txt"), "outside the target folder"),
    (tarfile.TarInfo("mmimdb/../../evil.txt"), "outside the target folder"),
    (tarfile.TarInfo("/tmp/evil.txt"), "absolute path"),
    (_link("mmimdb/passwd", "../../etc/passwd"), "outside the archive"),
    (_link("mmimdb/abs", "/etc/passwd"), "outside the archive"),
    (_fifo("mmimdb/pipe"), "device or fifo"),
])
def test_unsafe_members_are_rejected(tmp_path, member, reason):
    bad = _tar_with(tmp_path / "bad.tar.gz", member)
    dest = tmp_path / "out" / "imdb"
    with pytest.raises(UnsafeArchive, match=reason):
        unpack(bad, dest)
    assert list(dest.iterdir()) == []  # staging removed, nothing moved in, no marker
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


def test_inner_links_are_fine_and_root_is_searched(tmp_path):
    with tarfile.open(tmp_path / "ok.tar", "w") as tar:
        for name in ("top/inner/mmimdb/split.json", "top/inner/mmimdb/dataset/a.json"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
        tar.addfile(_link("top/inner/mmimdb/dataset/b.json", "a.json"))
    dest = tmp_path / "d"
    assert unpack(tmp_path / "ok.tar", dest) == dest / "top" / "inner" / "mmimdb"
    (dest / MARKER).unlink()
    assert find_root(dest) == dest / "top" / "inner" / "mmimdb"
    with pytest.raises(FileExistsError, match="would overwrite .*top"):
        unpack(tmp_path / "ok.tar", dest)  # no marker: unpacking again must not clobber
    with pytest.raises(FileNotFoundError, match="no folder holding split.json and dataset/"):
        find_root(dest / "top" / "inner" / "mmimdb" / "dataset")


def test_cli_download_and_unpack(archive, tmp_path, capsys, caplog):
    out = tmp_path / "resources" / "imdb" / "mmimdb.tar.gz"
    dest = tmp_path / "resources" / "imdb"
    n = str(archive.stat().st_size)
    argv = ["download", "--url", archive.as_uri(), "--out", str(out), "--size", n,
            "--sha256", sha(archive), "--unpack", str(dest)]
    assert data_main(argv) == 0
    assert capsys.readouterr().out.strip() == str(dest / "mmimdb")
    assert data_main(["download", "--url", archive.as_uri(), "--out", str(tmp_path / "x.tar.gz"),
                      "--sha256", "ab" * 32]) == 1
    assert "expected " + "ab" * 32 in caplog.text


def test_download_rule_feeds_the_manifest(archive, tmp_path):
    """The Snakemake rule: a file:// mirror, fetched, verified and unpacked, then the manifest."""
    import yaml

    from tests.workflow.snakemake_run import snakemake

    override = tmp_path / "imdb.yaml"
    override.write_text(yaml.safe_dump({"datasets": {"imdb": {
        "root": "resources/imdb/mmimdb",
        "download": {"url": archive.as_uri(), "size": archive.stat().st_size, "sha256": sha(archive)}}}}))
    run = snakemake(tmp_path / "work", "--cores", "1", "results/imdb/manifest.csv", configfile=override,
                    timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    work = tmp_path / "work"
    assert (work / "resources/imdb/mmimdb.tar.gz").stat().st_size == archive.stat().st_size
    manifest = (work / "results/imdb/manifest.csv").read_text()
    assert "0000011" in manifest and "Drama|Romance" in manifest
    assert "download_mmimdb" in run.stdout + run.stderr
