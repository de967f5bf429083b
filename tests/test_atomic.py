"""Every file the library writes goes through one atomic core (``spikevideoformer.atomic``).

A writer whose final rename fails must leave the previous file byte-identical and no
temporary file behind, and the rename must be the one in ``atomic.py`` (no private copies).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

PKG = Path(__file__).resolve().parents[1] / "src" / "spikevideoformer"
CORE = str(PKG / "atomic.py")
# os.replace outside the core, on purpose: checkpoint *directories* are swapped with two renames
# (their files are written by the core), and the native LIF kernel's build cache
ALLOWED_RENAMES = {"engine/checkpoint.py", "layers/_lif_native.py"}


def test_no_private_atomic_writer_in_the_library():
    pattern = re.compile(r"\bos\.replace\(|\bos\.rename\(|mkstemp\(|NamedTemporaryFile\(")
    hits = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
            if p != PKG / "atomic.py" and pattern.search(p.read_text(encoding="utf-8"))]
    assert sorted(h for h in hits if h not in ALLOWED_RENAMES) == []


def _old_file_survives(monkeypatch, target: Path, write, old: bytes = b"previous contents\n"):
    """Run ``write()`` with a failing ``os.replace``: it raises, ``target`` keeps ``old``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if old is not None:
        target.write_bytes(old)
    before = sorted(p.name for p in target.parent.iterdir())
    callers = []

    def crash(src, dst):
        callers.append(sys._getframe(1).f_code.co_filename)
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    try:
        with pytest.raises(OSError, match="simulated crash"):
            write()
    finally:
        monkeypatch.undo()
    assert callers and callers[0] == CORE, callers
    if old is not None:
        assert target.read_bytes() == old
    assert sorted(p.name for p in target.parent.iterdir()) == before  # no temporary left


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(1, 1))
    FigureCanvasAgg(fig)
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    return fig


def _writers(tmp_path):
    from spikevideoformer import atomic
    from spikevideoformer.data.events import write_events
    from spikevideoformer.engine.logger import atomic_write_bytes

    ev = {"x": np.array([1, 2]), "y": np.array([0, 1]), "t": np.array([5, 9]), "p": np.array([1, 0])}
    return {
        "write_bytes": (tmp_path / "a.bin", lambda p: atomic.write_bytes(p, b"new")),
        "write_text": (tmp_path / "a.txt", lambda p: atomic.write_text(p, "new\n")),
        "write_json": (tmp_path / "a.json", lambda p: atomic.write_json(p, {"a": 1.5})),
        "write_csv": (tmp_path / "a.csv", lambda p: atomic.write_csv(p, [{"a": 1, "b": 0.5}])),
        "save_figure": (tmp_path / "a.png", lambda p: atomic.save_figure(_figure(), p)),
        "engine.logger.atomic_write_bytes": (tmp_path / "b.bin", lambda p: atomic_write_bytes(p, b"x")),
        "write_events npy": (tmp_path / "e.npy", lambda p: write_events(p, ev)),
        "write_events npz": (tmp_path / "e.npz", lambda p: write_events(p, ev, sensor_size=(4, 4))),
    }


@pytest.mark.parametrize("name", list(_writers(Path("/nonexistent"))))
def test_failed_write_keeps_the_old_file(name, tmp_path, monkeypatch):
    target, write = _writers(tmp_path)[name]
    _old_file_survives(monkeypatch, target, lambda: write(target))
    write(target)  # and without the crash it works, with the usual permissions
    assert target.stat().st_size > 0
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_metric_logger_and_curves(tmp_path, monkeypatch):
    from spikevideoformer.engine.logger import MetricLogger, plot_curves

    log = MetricLogger(tmp_path)
    for epoch in (1, 2):
        log.log({"epoch": epoch, "loss": 1.0 / epoch})
    jsonl = log.jsonl_path.read_bytes()
    _old_file_survives(monkeypatch, log.jsonl_path, lambda: log.truncate(1), old=jsonl)
    _old_file_survives(monkeypatch, log.csv_path, lambda: log.log({"epoch": 3, "new_column": 1}),
                       old=log.csv_path.read_bytes())
    _old_file_survives(monkeypatch, tmp_path / "curves.png", lambda: plot_curves(log.jsonl_path))


def test_video_and_export(tmp_path, monkeypatch):
    from spikevideoformer.data.video_io import write_video
    from spikevideoformer.deploy import export_model

    frames = np.zeros((3, 16, 16, 3), dtype=np.uint8)
    _old_file_survives(monkeypatch, tmp_path / "v.mp4", lambda: write_video(tmp_path / "v.mp4", frames))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 4 * 4, 2)).eval()
    example = torch.rand(1, 2, 3, 4, 4)
    out = tmp_path / "m.pt2"
    _old_file_survives(monkeypatch, out, lambda: export_model(model, example, out))


def test_checkpoint_files(tmp_path, monkeypatch):
    from spikevideoformer.engine import save_checkpoint

    net = torch.nn.Linear(3, 2)
    save_checkpoint(tmp_path / "last", net, epoch=0, step=0, config={})
    old = {p.name: p.read_bytes() for p in (tmp_path / "last").iterdir()}
    _old_file_survives(monkeypatch, tmp_path / "last" / "model.safetensors",
                       lambda: save_checkpoint(tmp_path / "last", net, epoch=1, step=1, config={}),
                       old=old["model.safetensors"])
    assert {p.name: p.read_bytes() for p in (tmp_path / "last").iterdir()} == old



def test_bench_csv_writer_is_the_core(tmp_path, monkeypatch):
    from spikevideoformer.analysis.bench import report

    target = tmp_path / "bench_x.csv"
    _old_file_survives(monkeypatch, target, lambda: report.write_csv(target, [{"a": 0.1234567891}]))
    report.write_csv(target, [{"a": 0.1234567891}])
    assert target.read_bytes() == b"a\r\n0.123457\r\n"
    report.write_csv(tmp_path / "none.csv", [])  # no rows, no file
    assert not (tmp_path / "none.csv").exists()
