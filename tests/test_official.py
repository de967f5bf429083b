"""Official checkpoint import: exact parity with the authors' model outputs (reference case)."""
import pytest
import torch

import spikevideoformer as svf
from conftest import REFERENCE

CASE = REFERENCE / "official_tiny_3D_ham"


def load(name):
    return torch.load(CASE / name, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def model():
    return svf.load_official_checkpoint(CASE / "state_dict.pt").eval()


def test_config_inferred(model):
    assert model.embed_dim == (16, 32, 64, 80) and model.num_classes == 10
    assert (model.attention, model.design) == ("hamming", "joint")


def test_image_parity(model):
    video = load("input.pt").unsqueeze(1).repeat(1, 4, 1, 1, 1)
    with torch.no_grad():
        out = model(video)
    torch.testing.assert_close(out, load("logits.pt"), rtol=0, atol=1e-4)


def test_video_parity(model):
    with torch.no_grad():
        out = model(load("video_input.pt").transpose(0, 1))
    torch.testing.assert_close(out, load("video_logits.pt"), rtol=0, atol=1e-4)


@pytest.mark.parametrize("wrap", ["model", "state_dict", "module_prefix"])
def test_wrappers(wrap, tmp_path):
    sd = load("state_dict.pt")
    if wrap == "module_prefix":
        obj = {"module." + k: v for k, v in sd.items()}
    else:
        obj = {wrap: sd, "epoch": 3}
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    m = svf.load_official_checkpoint(path).eval()
    video = load("input.pt").unsqueeze(1).repeat(1, 4, 1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(m(video), load("logits.pt"), rtol=0, atol=1e-4)


def test_att_mode_selection():
    sd = load("state_dict.pt")
    dot_sd = {k: v for k, v in sd.items() if ".attn_bn." not in k}
    m = svf.load_official_checkpoint(dot_sd, att_mode="2D")
    assert (m.attention, m.design) == ("dot", "spatial")
    m = svf.load_official_checkpoint(dot_sd)
    assert (m.attention, m.design) == ("dot", "joint")
    with pytest.raises(ValueError, match="att_mode"):
        svf.load_official_checkpoint(dot_sd, att_mode="3D")


def test_mismatch_reported_in_one_error():
    sd = dict(load("state_dict.pt"))
    sd.pop("block3.0.mlp.fc1_conv.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["head.bias"] = torch.zeros(11)
    with pytest.raises(ValueError) as e:
        svf.load_official_checkpoint(sd)
    msg = str(e.value)
    assert "missing" in msg and "unexpected" in msg and "mis-shaped" in msg and "head.bias" in msg


def test_missing_file_and_pickled_code(tmp_path):
    with pytest.raises(FileNotFoundError):
        svf.load_official_checkpoint(tmp_path / "nope.pth")
    bad = tmp_path / "evil.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "obj": object()}, bad)
    with pytest.raises(ValueError, match="weights_only"):
        svf.load_official_checkpoint(bad)
