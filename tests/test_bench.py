"""``svf bench --quick`` smoke test: it runs, prints the tables and writes the CSV files and PNG.

No timing assertions (CI machines are noisy); the numbers of a quick run mean nothing.
"""
import argparse
import csv

import pytest
import torch

from helpers import assert_fires, lively_bn
from spikevideoformer.analysis import bench as B
from spikevideoformer.analysis.bench import sections
from spikevideoformer import layers as svf_layers
from spikevideoformer.cli import bench



def _run(argv):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    return bench.run(p.parse_args(argv))


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_quick_run_writes_csv_and_png(tmp_path, capsys):
    out = tmp_path / "bench"
    assert _run(["--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for head in ("LIF forward+backward", "Training step", "Inference forward latency", "Summary"):
        assert head in text
    assert "Goals" not in text  # the library reports measurements; targets: benchmarks/bench_goals.py
    for name in ("bench_lif.csv", "bench_train.csv", "bench_scaling.csv", "bench_summary.csv",
                 "bench_machine.csv"):
        assert (out / name).stat().st_size > 0, name
    png = out / "bench.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lif = _rows(out / "bench_lif.csv")
    assert {r["name"] for r in lif} >= {"svf"}
    assert all(float(r["time_ms"]) > 0 and float(r["peak_mb"]) > 0 for r in lif)
    scaling = _rows(out / "bench_scaling.csv")
    assert [r["name"] for r in scaling][:5] == list(B.VARIANTS)
    assert list(B.VARIANTS) == [*svf_layers.DESIGNS, "ann"]
    summary = _rows(out / "bench_summary.csv")
    assert list(summary[0]) == ["goal", "value", "target", "met"]
    assert {(r["target"], r["met"]) for r in summary} == {("(reported)", "")}
    assert {int(r["T"]) for r in scaling} == {2, 4}
    machine = {r["key"]: r["value"] for r in _rows(out / "bench_machine.csv")}
    assert machine["torch"] == torch.__version__ and "cpu" in machine
    if B.spikingjelly_available():
        assert "sj" in {r["name"] for r in lif}
        train = {r["name"]: r for r in _rows(out / "bench_train.csv")}
        assert train["svf"]["outputs_identical"] == "True"  # checked on a firing network


def test_opt_in_sections_ckpt_compile_fold(tmp_path, capsys, monkeypatch):
    """``ckpt``, ``compile``, ``fold``: CSV, table, summary ratio each (torch.compile stubbed by
    the identity: a real compile takes seconds even with aot_eager)."""
    seen = {}

    def fake_compile(model, backend=None):
        seen["backend"] = backend
        return model
    monkeypatch.setattr(torch, "compile", fake_compile)
    out = tmp_path / "bench"
    assert _run(["--quick", "--sections", "ckpt,compile,fold", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert seen["backend"] == "aot_eager"  # the quick setting
    for head in ("Grad checkpointing", "torch.compile vs eager", "deploy.fold vs unfolded",
                 "torch threads: 1"):
        assert head in text
    ck = _rows(out / "bench_ckpt.csv")
    assert [r["name"] for r in ck] == ["plain", "checkpointed"]
    assert float(ck[1]["act_peak_mb"]) < float(ck[0]["act_peak_mb"])
    assert [r["name"] for r in _rows(out / "bench_compile.csv")] == ["eager", "compiled"]
    fo = _rows(out / "bench_fold.csv")
    assert [r["name"] for r in fo] == ["unfolded", "folded"]
    assert float(fo[0]["spike_agreement"]) == 1.0 and float(fo[0]["firing_rate"]) > 0
    goals = {r["goal"] for r in _rows(out / "bench_summary.csv")}
    assert {"grad checkpointing activation memory reduction, T=2 (x)",
            "grad checkpointing step time, T=2 (x)",
            "torch.compile speed-up vs eager (aot_eager) (x)",
            "fold speed-up vs unfolded (x)"} <= goals
    assert not (out / "bench_lif.csv").exists()


def test_goals_live_in_the_benchmark_scripts(tmp_path, capsys):
    """``benchmarks/bench_goals.py`` fills target/met of a run's summary; the library does not."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_goals
    finally:
        sys.path.pop(0)
    lif = [dict(name="svf", time_ms=1.0, cpu_ms=None, peak_mb=1.0),
           dict(name="sj", time_ms=2.5, cpu_ms=None, peak_mb=2.0)]
    sc = [dict(name="joint", T=t, time_ms=float(t), cpu_ms=None, peak_mb=1.0) for t in (8, 16, 32)]
    rows = B.summarize({"lif": lif, "scaling": sc})
    assert {(r["target"], r["met"]) for r in rows} == {(B.REPORTED, None)}
    judged = {r["goal"]: (r["value"], r["target"], r["met"]) for r in bench_goals.apply_goals(rows)}
    assert judged == {
        "LIF fwd+bwd speed-up vs SpikingJelly (x)": (2.5, ">= 2", True),
        "LIF fwd+bwd peak memory vs SpikingJelly (ratio)": (0.5, "<= 0.6", True),
        "latency T=32 / T=8, joint SDHA (x)": (4.0, "<= 4.20", True),
        "peak memory T=32 / T=8, joint (x)": (1.0, B.REPORTED, None),
    }
    extra = bench_goals.apply_goals([
        dict(goal="grad checkpointing activation memory reduction, T=16 (x)", value=3.5,
             target=B.REPORTED, met=None),
        dict(goal="grad checkpointing step time, T=16 (x) [CPU time]", value=1.5,
             target=B.REPORTED, met=None),
        dict(goal="fold speed-up vs unfolded (x)", value=1.6, target=B.REPORTED, met=None),
        dict(goal="torch.compile speed-up vs eager (inductor) (x)", value=2.0,
             target=B.REPORTED, met=None)])
    assert [(r["target"], r["met"]) for r in extra] == [
        (">= 3", True), ("<= 1.4", False), (">= 1.5", True), (B.REPORTED, None)]
    B.write_csv(tmp_path / "bench_summary.csv", rows)
    assert bench_goals.judge_folder(str(tmp_path)) == bench_goals.apply_goals(rows)
    assert "Goals" in capsys.readouterr().out
    assert _rows(tmp_path / "bench_summary.csv")[0]["met"] == "True"


def test_without_spikingjelly_rows_are_skipped(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sections, "spikingjelly_available", lambda: False)
    assert _run(["--quick", "--sections", "lif", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "SpikingJelly is not importable" in captured.err
    assert "sj" not in {r["name"] for r in _rows(tmp_path / "bench_lif.csv")}


def test_peak_memory_counts_allocations():
    n = 1 << 20

    def f():
        a = torch.ones(n)  # 4 MiB live ...
        b = torch.ones(n)  # ... 8 MiB at the peak
        del a, b

    peak = B.peak_memory(f)
    assert 8 * 2**20 <= peak < 9 * 2**20


def test_spikingjelly_swap_gives_identical_outputs():
    pytest.importorskip("spikingjelly.activation_based.neuron")
    from spikevideoformer.models import create_model
    from spikevideoformer.layers import LIF
    m = lively_bn(create_model("svf_tiny", num_classes=5)).eval()
    m2 = create_model("svf_tiny", num_classes=5).eval()
    m2.load_state_dict(m.state_dict())
    n = B.swap_to_spikingjelly(m2)
    assert n == sum(isinstance(x, LIF) for x in m.modules()) and n > 0
    video = torch.randn(1, 3, 3, 32, 32)
    assert_fires(m, lambda: m(video))
    with torch.no_grad():
        assert torch.equal(m(video), m2(video))
        assert torch.equal(m2(video), m2(video))  # no state survives a call


@pytest.mark.parametrize("argv,match", [
    (["--sections", "lif,nope"], "sections"),
    (["--designs", "joint,bogus"], "unknown design"),
    (["--model", "svf_huge"], "unknown model"),
    (["--size", "8"], "at least 16"),
])
def test_bad_arguments(argv, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        _run(["--quick", "--out", str(tmp_path), *argv])
