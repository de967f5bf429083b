"""analysis.profile: MACs, SOPs, energy and firing rates against hand computations (docs/design.md §5)."""
import argparse
import csv

import pytest
import torch
from torch import nn

from helpers import lively_bn
from spikevideoformer import create_model
from spikevideoformer.analysis import E_AC, E_MAC, calibrate_bn, profile
from spikevideoformer.layers import LIF, NeuronSpec, SpikeAttention, lif_reference, LIFParams

TINY = dict(embed_dim=(8, 16, 16, 24), heads=2, depths=(1, 1))



class OneConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1, bias=False)

    def forward(self, x):  # [B, 4, 8, 8]
        return self.conv(x)


def test_conv_fed_by_spikes_at_known_rate():
    x = torch.zeros(2, 4, 8, 8)
    x.view(-1)[::4] = 1.0  # exactly 25 % ones
    r = profile(OneConv(), x, fold=False)
    (row,) = r.layers
    macs = 8 * 8 * 8 * 4 * 9  # per sample: out elements × C_in × k²
    assert row.input == "spike" and row.kind == "conv"
    assert row.macs == macs
    assert row.rate == pytest.approx(0.25) and row.mean_count == 1.0
    assert row.sops == pytest.approx(0.25 * macs)
    assert row.energy_j == pytest.approx(0.25 * macs * E_AC)
    assert r.total_energy_mj == pytest.approx(0.25 * macs * 0.9e-12 * 1e3)
    assert r.input_is_spikes


def test_conv_fed_by_pixels_costs_macs():
    x = torch.rand(2, 4, 8, 8)
    r = profile(OneConv(), x, fold=False)
    (row,) = r.layers
    assert row.input == "real" and row.sops == 0
    assert row.energy_j == pytest.approx(8 * 8 * 8 * 4 * 9 * 4.6e-12)
    # forcing the input to count as spikes needs integer values
    with pytest.raises(ValueError, match="not non-negative integer"):
        profile(OneConv(), x, fold=False, input_is_spikes=True)
    # integer event counts (values 0..3) as spikes: a spike of value k is k additions
    ev = torch.randint(0, 4, (2, 4, 8, 8)).float()
    (row,) = profile(OneConv(), ev, fold=False, input_is_spikes=True).layers
    assert row.sops == pytest.approx(float(ev.mean()) * row.macs)
    assert row.mean_count == pytest.approx(float(ev.sum() / (ev != 0).sum()))


class LIFLinear(nn.Module):
    def __init__(self, spike_max=1):
        super().__init__()
        self.lif = LIF(spike_max=spike_max)
        self.fc = nn.Linear(6, 5, bias=False)

    def forward(self, video):  # [B, T, 6] → time-major for the neuron
        return self.fc(self.lif(video.transpose(0, 1)))


def test_firing_rate_of_a_neuron_with_known_input():
    # constant input 1.5, tau 2, v_th 1: h = .75, 1.125 (fire, reset), .75, 1.125 → rate 1/2
    x = torch.full((3, 4, 6), 1.5)
    r = profile(LIFLinear(), x, fold=False)
    (n,) = r.neurons
    assert n.rate == 0.5 and n.rate_per_step == [0.0, 1.0, 0.0, 1.0] and n.mean_count == 1.0
    assert n.raster.shape == (4, 6)
    (row,) = r.layers
    macs = 4 * 5 * 6  # T × out × in per sample
    assert row.macs == macs and row.input == "spike"
    assert row.sops == pytest.approx(0.5 * macs)
    assert row.energy_j == pytest.approx(0.5 * macs * E_AC)


def test_integer_lif_counts_spike_values():
    # Integer-LIF D=4, input 3.0: h = 1.5→2, 1.25→1, 1.625→2, 1.3125→1 (reset subtracts)
    x = torch.full((2, 4, 6), 3.0)
    expected = lif_reference(x.transpose(0, 1), LIFParams(spike_max=4)) * 4
    assert expected[:, 0, 0].tolist() == [2.0, 1.0, 2.0, 1.0]
    r = profile(LIFLinear(spike_max=4), x, fold=False)
    (n,) = r.neurons
    assert n.rate == 1.0 and n.mean_count == 1.5
    (row,) = r.layers
    assert row.rate == 1.0 and row.mean_count == 1.5
    assert row.sops == pytest.approx(1.5 * row.macs)


class AttnToy(nn.Module):
    def __init__(self, attention):
        super().__init__()
        neuron = NeuronSpec(kind="relu" if attention == "softmax" else "lif")
        self.attn = SpikeAttention(16, neuron, heads=2, attention=attention, grouping="joint")

    def forward(self, video):  # [B, T, C, H, W]
        return self.attn(3 * video.transpose(0, 1))


@pytest.mark.parametrize("attention", ["hamming", "dot", "softmax"])
def test_attention_products(attention):
    torch.manual_seed(0)
    toy = lively_bn(AttnToy(attention), seed=4).eval()
    B, T, C, H, W = 1, 3, 16, 4, 4
    r = profile(toy, torch.randn(B, T, C, H, W))
    rows = {row.kind: row for row in r.layers}
    n, d = T * H * W, C // 2
    if attention == "softmax":
        for kind in ("Q K^T", "A V"):  # n²·d per head, real operands → MACs
            assert rows[kind].macs == 2 * n * n * d and rows[kind].input == "real"
            assert rows[kind].energy_j == pytest.approx(rows[kind].macs * E_MAC)
        return
    rates = {x.name.split(".")[-1]: x.rate for x in r.neurons}
    assert 0 < rates["v_lif"] < 1 and 0 < rates["q_lif"] < 1
    kv, qkv = rows["K^T V"], rows["Q (K^T V)"]
    assert kv.macs == qkv.macs == 2 * n * d * d  # n·d² per head
    assert kv.input == qkv.input == "spike"
    assert kv.sops == pytest.approx(rates["v_lif"] * kv.macs)  # driven by the spikes of V
    q_rate = 1.0 if attention == "hamming" else rates["q_lif"]  # 2Q-1 is ±1: every entry adds
    assert qkv.sops == pytest.approx(q_rate * qkv.macs)
    assert kv.energy_j == pytest.approx(kv.sops * E_AC)
    # the projections: folded RepConvs = 3×3 convs on spikes
    proj = next(x for x in r.layers if x.name.endswith("proj_conv"))
    assert proj.kind == "conv" and proj.input == "spike" and proj.macs == T * H * W * C * C * 9


def test_stage_sums_and_stem():
    torch.manual_seed(0)
    model = lively_bn(create_model("svf_tiny", num_classes=10, **TINY))
    T, S = 2, 32
    r = profile(model, torch.randn(1, T, 3, S, S))
    stages = r.by_stage()
    assert list(stages)[:6] == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert sum(s.energy_j for s in stages.values()) == pytest.approx(r.total_energy_j)
    assert sum(s.macs for s in stages.values()) == pytest.approx(r.total_macs)
    by_name = {x.name: x for x in r.layers}
    stem = by_name["downsample1_1.encode_conv"]
    assert stem.stage == "stem" and stem.input == "real"
    assert stem.macs == T * 4 * (S // 2) ** 2 * 3 * 49  # c0/2 = 4 channels, 7×7 on 3 channels
    assert stages["stem"].energy_j == pytest.approx(stem.macs * E_MAC)
    assert [x.stage for x in r.layers if x.stage == "stem"] == ["stem"]
    assert by_name["downsample1_2.encode_conv"].stage == "stage1"
    assert by_name["ConvBlock2_2.0.conv2"].stage == "stage2"
    assert by_name["block3.0.attn.kv"].stage == "stage3"
    assert by_name["block4.0.mlp.fc2_conv"].stage == "stage4"
    assert by_name["head"].stage == "head" and by_name["head"].input == "spike"
    # only the stem and SepConv's pwconv2 (fed by the dwconv output) see real values
    real = {x.name for x in r.layers if x.input == "real"}
    assert real == {"downsample1_1.encode_conv"} | {n for n in by_name if n.endswith("Conv.pwconv2")}
    assert r.mean_firing_rate > 0.02 and len(r.neurons) > 20
    text = r.table()
    assert "block3.0.attn.qkv" in text and "total" in text
    # event input: binary frames into a 2-channel stem are spikes (ACs)
    ev_model = create_model("svf_tiny", num_classes=10, in_chans=2, **TINY)
    ev = (torch.rand(1, T, 2, S, S) < 0.2).float()
    ev_r = profile(ev_model, ev)
    assert ev_r.input_is_spikes and ev_r.layers[0].input == "spike"
    assert profile(ev_model, ev, input_is_spikes=False).layers[0].input == "real"


def test_fold_false_counts_repconv_internals_and_calibrate_bn():
    torch.manual_seed(0)
    model = create_model("svf_tiny", num_classes=10, **TINY).eval()
    video = torch.randn(1, 2, 3, 32, 32)
    silent = profile(model, video)
    calibrate_bn(model, video)
    assert not model.training  # mode restored
    live = profile(model, video)
    assert live.mean_firing_rate > silent.mean_firing_rate
    unfolded = profile(model, video, fold=False)
    assert unfolded.mean_firing_rate == pytest.approx(live.mean_firing_rate)
    names = {x.name for x in unfolded.layers if x.input == "real"}
    assert any(".q_conv.0.body.2" in n for n in names)  # dw/1×1 behind the padded BN


def test_csv_and_cli(tmp_path):
    torch.manual_seed(0)
    from spikevideoformer.cli import COMMANDS, main

    argv = ["energy", "--model", "svf_tiny", "--frames", "2", "--size", "32", "--summary",
            "--out", str(tmp_path)]
    if "energy" in COMMANDS:
        assert main(argv) == 0
    else:  # not registered yet: call the module directly
        from spikevideoformer.cli import energy

        p = argparse.ArgumentParser()
        energy.add_arguments(p)
        assert energy.run(p.parse_args(argv[1:])) == 0
    for f in ("energy_layers.csv", "energy_neurons.csv", "energy_stages.csv", "energy.json",
              "energy_stages.png", "firing_rates.png", "spike_raster.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    rows = list(csv.DictReader(open(tmp_path / "energy_layers.csv")))
    assert rows[0]["name"] == "downsample1_1.encode_conv" and rows[0]["input"] == "real"
    stages = list(csv.DictReader(open(tmp_path / "energy_stages.csv")))
    assert stages[-1]["stage"] == "total"
    assert float(stages[-1]["energy_mj"]) == pytest.approx(
        sum(float(s["energy_mj"]) for s in stages[:-1]), rel=1e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_cli_growth(capsys):
    from spikevideoformer.cli import energy

    p = argparse.ArgumentParser()
    energy.add_arguments(p)
    args = p.parse_args(["--model", "svf_tiny", "--size", "32", "--frames", "2", "--growth", "1,2"])
    assert energy.run(args) == 0
    out = capsys.readouterr().out
    assert "growth E(2)/E(1): SNN" in out and "ANN" in out
    with pytest.raises(ValueError, match="at least two"):
        energy.run(p.parse_args(["--model", "svf_tiny", "--size", "32", "--growth", "4"]))
