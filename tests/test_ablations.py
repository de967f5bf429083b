"""Ablation study: summaries, outputs, variant validation, serial/parallel runs and reuse."""
import json
import math
import os
import subprocess
import sys

import pytest

from spikevideoformer.cli import main as svf_main
from spikevideoformer.tasks import ablations
from spikevideoformer.tasks.ablation_report import read_runs, write_outputs
from spikevideoformer.tasks.ablations import (
    CONFIG_VARIANTS, GRID_VARIANTS, HEADLINE_VARIANTS, PAPER_VARIANTS, VARIANTS, AblationRun, curves,
    headline_budget, markdown_table, run_ablations, summarize,
)

CONFIG = "src/spikevideoformer/configs/ablate.yaml"
TINY = ["data.train_samples=32", "data.val_samples=16", "data.batch_size=16", "data.num_frames=2",
        "optim.epochs=2", "optim.warmup_epochs=0"]


def _run(variant, seed, acc, auc=0.5):
    return AblationRun(variant, seed, acc, acc, auc, 3, 1.0, skipped_steps=seed,
                       energy_mj=0.1 + 0.01 * seed, firing_rate=0.05)


def test_headline_budget_scales_the_budget():
    from spikevideoformer.engine.config import load_config
    assert headline_budget(load_config(CONFIG)) == ["optim.epochs=8", "data.val_samples=256"]


def test_summary_mean_std_and_outputs(tmp_path):
    runs = [_run("a", 0, 0.5, 0.4), _run("a", 1, 0.7, 0.6), _run("b", 0, 0.3)]
    rows = summarize(runs)
    assert [r["variant"] for r in rows] == ["a", "b"]
    assert rows[0]["mean"] == pytest.approx(0.6) and rows[0]["std"] == pytest.approx(0.1414, abs=1e-4)
    assert rows[0]["auc_mean"] == pytest.approx(0.5)
    assert math.isnan(rows[1]["std"])
    table = markdown_table(rows)
    assert "| a | 2 | 60.0 ± 14.1 | 50.0 | 70.0 | 50.0 ± 14.1 | 1 |" in table
    assert "| b | 1 | 30.0 |" in table  # one seed: no ± nan
    assert table.splitlines()[2].endswith("| 1 | 0.1050 | 0.050 |")  # energy and rate: seed means
    paths = write_outputs(runs, tmp_path / "new", chance=0.5,
                          curves={("a", 0): [0.3, 0.5], ("a", 1): [0.4, 0.7], ("b", 0): [0.3]})
    assert paths["png"].stat().st_size > 1000 and paths["markdown"].read_text() == table + "\n"
    assert paths["curves"].stat().st_size > 1000
    assert paths["runs"].read_text().count("\n") == 4
    assert read_runs(paths["runs"]) == runs  # round trip, types included
    with pytest.raises(ValueError, match="not an ablation runs.csv"):
        read_runs(paths["summary"])
    # a runs.csv written before the energy columns existed reads back with nan energies
    old = tmp_path / "old.csv"
    lines = paths["runs"].read_text().splitlines()
    old.write_text("\n".join(",".join(c.split(",")[:-2]) for c in lines) + "\n")
    back = read_runs(old)
    assert [r.final for r in back] == [r.final for r in runs] and math.isnan(back[0].energy_mj)
    assert "| – | – |" in markdown_table(summarize(back))
    with pytest.raises(ValueError, match="at least one run"):
        write_outputs([], tmp_path)


def test_paper_variants_present_and_bad_arguments_rejected(tmp_path):
    for name in ("dot/joint", "spatial, no temporal state", "scale 1/8", "image-pretrained init",
                 "hamming/factorized", "hamming/hierarchical", "scale 1/sqrt(d)"):
        assert name in VARIANTS
    assert set(HEADLINE_VARIANTS) <= set(VARIANTS) and set(PAPER_VARIANTS) <= set(VARIANTS)
    # the DigitRelay study: the full {Hamming, dot} x design grid, scale, init, no-state control;
    # the ANN counterpart on the same recipe is a variant on request
    grid = CONFIG_VARIANTS["relay_ablate"]
    assert grid == GRID_VARIANTS and set(grid) <= set(VARIANTS) and len(set(grid)) == 11
    assert VARIANTS["ANN counterpart"] == ["model.neuron=relu", "model.attention=softmax"]
    for a in ("hamming", "dot"):
        for d in ("joint", "spatial", "factorized", "hierarchical"):
            assert [n for n in grid if n.split(" ")[0] in (f"{a}/{d}", f"{a}/{d} (full)")] or \
                (a, d) == ("hamming", "joint"), (a, d)
    assert "model.design=spatial" in VARIANTS["dot/spatial"] and "model.attention=dot" in VARIANTS["dot/spatial"]
    with pytest.raises(ValueError, match="unknown ablation variant"):
        run_ablations(CONFIG, tmp_path, variants=["cosine"])
    with pytest.raises(ValueError, match="jobs"):
        run_ablations(CONFIG, tmp_path, jobs=0)
    with pytest.raises(ValueError, match="unknown key"):  # a bad override fails before training
        run_ablations(CONFIG, tmp_path, overrides=["optim.nonsense=1"])


def test_runs_are_recorded_reused_and_parallel_equals_serial(tmp_path, monkeypatch):
    names = ["hamming/joint (full)", "spatial, no temporal state"]
    serial = run_ablations(CONFIG, tmp_path / "s", seeds=(0, 1), variants=names, overrides=TINY,
                           log=lambda _: None)
    assert [(r.variant, r.seed) for r in serial] == [(v, s) for v in names for s in (0, 1)]
    for r in serial:
        assert 0 <= r.final <= 1 and r.epochs == 2 and 0 <= r.mean_over_epochs <= 1
        assert r.metric == "val_acc"
        assert r.energy_mj > 0 and 0 <= r.firing_rate <= 1  # profiled best checkpoint
        saved = json.loads((tmp_path / "s" / ablations.run_dir_name(r.variant) / f"seed{r.seed}"
                            / "ablation_run.json").read_text())
        assert saved["run"]["final"] == r.final
    got = curves(serial, tmp_path / "s")
    assert set(got) == {(r.variant, r.seed) for r in serial}
    assert all(len(c) == 2 and c[-1] == r.final for r, c in zip(serial, got.values()))
    # the same study again: read back, nothing retrained
    monkeypatch.setattr(ablations, "_train_one", lambda spec: pytest.fail("retrained"))
    assert run_ablations(CONFIG, tmp_path / "s", seeds=(0, 1), variants=names, overrides=TINY,
                         log=lambda _: None) == serial
    # a different budget is a different experiment: it must train again
    with pytest.raises(pytest.fail.Exception, match="retrained"):
        run_ablations(CONFIG, tmp_path / "s", seeds=(0,), variants=names[:1],
                      overrides=TINY + ["optim.lr=0.002"], log=lambda _: None)
    monkeypatch.undo()
    # two worker processes (1 thread each) reproduce the serial results exactly. The pool runs
    # in a child process: a process pool's helper threads must not live in the pytest process,
    # which later forks DataLoader workers (fork with live threads can deadlock the child).
    code = ("import json, sys\n"
            "from spikevideoformer.tasks.ablations import run_ablations\n"
            "from spikevideoformer.tasks.ablation_report import write_outputs\n"
            "a = json.loads(sys.argv[1])\n"
            "write_outputs(run_ablations(a['config'], a['out'], (0, 1), a['names'], a['tiny'],"
            " jobs=2), a['out'])\n")
    args = {"config": CONFIG, "out": str(tmp_path / "p"), "names": names, "tiny": TINY}
    subprocess.run([sys.executable, "-c", code, json.dumps(args)], check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    parallel = read_runs(tmp_path / "p" / "runs.csv")
    assert [(r.variant, r.seed, r.final, r.mean_over_epochs) for r in parallel] == \
        [(r.variant, r.seed, r.final, r.mean_over_epochs) for r in serial]


def test_image_pretrained_variant_pretrains_then_finetunes(tmp_path):
    (run,) = run_ablations(CONFIG, tmp_path, seeds=(3,), variants=["image-pretrained init"],
                           overrides=TINY, log=lambda _: None)
    out = tmp_path / "image_pretrained_init" / "seed3"
    assert (out / "pretrain" / "best").exists() and run.epochs == 2
    assert "pretrain/best" in (out / "config.yaml").read_text()


def test_cli_rejects_bad_seeds_and_variants(tmp_path, capsys):
    with pytest.raises(SystemExit, match="--seeds"):
        svf_main(["ablate", "--seeds", "a,b", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="unknown variant"):
        svf_main(["ablate", "--variants", "cosine", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="unknown variant"):
        svf_main(["ablate", "--variants", "dot/joint,cosine", "--out", str(tmp_path)])
    from spikevideoformer.tasks.ablations import parse_variants
    assert parse_variants("dot/joint, spatial, no temporal state,scale 1/8") == \
        ["dot/joint", "spatial, no temporal state", "scale 1/8"]
    with pytest.raises(ValueError, match="'cosine'"):
        parse_variants("dot/joint,cosine")


def test_segmentation_config_ablates_miou(tmp_path):
    seg = "src/spikevideoformer/configs/seg_demo.yaml"
    (run,) = run_ablations(seg, tmp_path, seeds=(0,), variants=["dot/joint"], log=lambda _: None,
                           overrides=["data.train_samples=8", "data.val_samples=4", "data.batch_size=4",
                                      "data.num_frames=2", "data.size=32", "optim.epochs=1"])
    assert run.metric == "val_miou" and 0 <= run.final <= 1 and run.epochs == 1
    rows = summarize([run])
    assert "final val_miou %" in markdown_table(rows)


def test_write_csv_union_header_float_format_atomic(tmp_path):
    from spikevideoformer.atomic import write_csv
    path = write_csv(tmp_path / "sub" / "t.csv", [{"a": 1, "b": 0.123456789}, {"c": "x", "a": 2}],
                     float_format=".3g")
    assert path.read_text().splitlines() == ["a,b,c", "1,0.123,", "2,,x"]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["t.csv"]  # no temp file left


@pytest.mark.slow
def test_quick_study_every_variant_trains(tmp_path):
    """docs/ablations.md `--quick` claims (about 6 min on 2 cores): with zero-init every variant,
    dot-product attention included, trains (measured: 100 % on every seed, no skipped update)."""
    assert svf_main(["ablate", "--quick", "--jobs", "2", "--out", str(tmp_path)]) == 0
    rows = {r["variant"]: r for r in summarize(read_runs(tmp_path / "runs.csv"))}
    assert set(rows) == {"hamming/joint (full)", "dot/joint", "hamming/spatial (neuron-only time)"}
    for name, row in rows.items():
        assert row["min"] >= 0.95 and row["skipped_steps"] == 0, (name, row)


def test_a_config_key_added_later_keeps_finished_runs_reusable():
    """A run saved before a config key existed is the same experiment while the key has its
    default value, and a different one when it does not."""
    same = ablations._same
    defaults = {"config": {"model": {"name": "svf_tiny", "surrogate_alpha": None}}}
    saved = {"variant": "v", "config": {"model": {"name": "svf_tiny"}}}
    assert same(saved, {"variant": "v", "config": {"model": {"name": "svf_tiny", "surrogate_alpha": None}}},
                defaults)
    assert not same(saved, {"variant": "v", "config": {"model": {"name": "svf_tiny", "surrogate_alpha": 2.0}}},
                    defaults)
    assert not same(saved, {"variant": "v", "config": {"model": {"name": "svf_15m", "surrogate_alpha": None}}},
                    defaults)
    assert not same(saved, {"variant": "v", "config": {"model": {}}}, defaults)  # a key removed
    assert not same(saved, {"variant": "w", "config": saved["config"]}, defaults)
