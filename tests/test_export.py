"""deploy.export_model: torch.export program (and ONNX when installed) equal PyTorch outputs."""
import sys

import pytest
import torch

from helpers import assert_fires, lively_bn
from spikevideoformer import create_model
from spikevideoformer.deploy import export_model, fold, load_exported

TINY = dict(embed_dim=(8, 16, 16, 24), heads=2, depths=(1, 1))



@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    # Integer-LIF exercises every inference path: integer counts and per-channel spike units
    return lively_bn(create_model("svf_tiny", num_classes=7, spike_max=4, **TINY)).eval()


def test_torch_export_matches(model, tmp_path):
    x = torch.randn(1, 2, 3, 32, 32)
    path = export_model(model, x, tmp_path / "svf.pt2")
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["svf.pt2"]
    program = load_exported(path)
    assert_fires(model, lambda: model(x))
    with torch.no_grad():
        ref, plain = fold(model)(x), model(x)
        out = program(x)
    assert torch.allclose(out, ref, atol=1e-6, rtol=0)
    assert torch.allclose(out, plain, atol=1e-4, rtol=0)
    # the graph is fixed to the example: T is unrolled
    with pytest.raises(AssertionError, match=r"Guard failed: video\.size\(\)\[1\] == 2"):
        program(torch.randn(1, 3, 3, 32, 32))


def test_onnx_matches(model, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    x = torch.randn(1, 2, 3, 32, 32)
    path = export_model(model, x, tmp_path / "svf.onnx", format="onnx")
    session = ort.InferenceSession(str(path))
    (out,) = session.run(None, {"video": x.numpy()})
    with torch.no_grad():
        ref = fold(model)(x)
    assert torch.allclose(torch.from_numpy(out), ref, atol=1e-4, rtol=0)


def test_onnx_missing_gives_install_hint(model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx → ImportError
    with pytest.raises(ImportError, match="pip install onnx onnxruntime"):
        export_model(model, torch.randn(1, 2, 3, 32, 32), tmp_path / "m.onnx", format="onnx")


def test_bad_arguments(model, tmp_path):
    with pytest.raises(ValueError, match="format"):
        export_model(model, torch.randn(1, 2, 3, 32, 32), tmp_path / "m", format="tflite")
    with pytest.raises(ValueError, match="channels"):
        export_model(model, torch.randn(1, 2, 4, 32, 32), tmp_path / "m.pt2")
