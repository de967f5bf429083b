"""Ablation study plumbing: summaries, outputs, variant validation (training is covered elsewhere)."""
import math

import pytest

from spikevideoformer.tasks.ablations import (
    VARIANTS, AblationRun, markdown_table, run_ablations, summarize, write_outputs,
)


def test_summary_mean_std_and_outputs(tmp_path):
    runs = [AblationRun("a", 0, 0.5, 0.6, 1.0), AblationRun("a", 1, 0.7, 0.7, 1.0),
            AblationRun("b", 0, 0.3, 0.3, 1.0)]
    rows = summarize(runs)
    assert [r["variant"] for r in rows] == ["a", "b"]
    assert rows[0]["mean"] == pytest.approx(0.6) and rows[0]["std"] == pytest.approx(0.1414, abs=1e-4)
    assert math.isnan(rows[1]["std"])
    assert "60.0 ± 14.1" in markdown_table(rows)
    paths = write_outputs(runs, tmp_path)
    assert paths["png"].is_file() and (tmp_path / "summary.md").is_file()
    assert paths["runs"].read_text().count("\n") == 4


def test_paper_variants_present_and_unknown_rejected(tmp_path):
    for name in ("dot/joint", "spatial, no temporal state", "scale 1/8", "image-pretrained init"):
        assert name in VARIANTS
    with pytest.raises(ValueError, match="unknown ablation variant"):
        run_ablations("src/spikevideoformer/configs/demo.yaml", tmp_path, variants=["cosine"])
