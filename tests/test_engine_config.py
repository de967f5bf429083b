"""Config: defaults, unknown keys, types/values, overrides, round trips, docs coverage."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from spikevideoformer.engine import ConfigError, TrainConfig, load_config, save_config, to_dict

DOC = Path(__file__).resolve().parents[1] / "docs" / "config_schema.md"


def test_defaults():
    cfg = load_config()
    assert isinstance(cfg, TrainConfig)
    assert cfg.model.name == "svf_tiny" and cfg.model.attention == "hamming" and cfg.model.embed_dim is None
    assert cfg.data.dataset == "moving_digits" and cfg.data.batch_size == 32 and cfg.data.modality == "rgb"
    assert cfg.optim.lr == 1e-3 and cfg.optim.betas == (0.9, 0.999) and cfg.optim.grad_clip == 1.0
    assert cfg.run.task == "classification" and cfg.run.deterministic and not cfg.run.sync_bn


def test_unknown_key_names_key_section_and_valid_keys(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 0.1\n  weight_decy: 0.01\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "'weight_decy'" in msg and "'optim'" in msg and "did you mean 'weight_decay'" in msg
    assert "valid keys: lr, weight_decay, betas" in msg
    with pytest.raises(ConfigError, match=r"unknown key 'trainer' at top level; valid keys: model, data, optim, run"):
        load_config({"trainer": {}})


def test_unknown_key_in_overrides():
    with pytest.raises(ConfigError, match=r"override 'data.batchsize=8': unknown key 'batchsize' in section 'data'"):
        load_config(None, ["data.batchsize=8"])
    with pytest.raises(ConfigError, match=r"unknown key 'optimizer' at top level"):
        load_config(None, ["optimizer.lr=1"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["optim.lr"])
    with pytest.raises(ConfigError, match="must be 'section.key'"):
        load_config(None, ["lr=0.1"])


@pytest.mark.parametrize("raw,match", [
    ({"data": {"batch_size": "eight"}}, r"data\.batch_size: expected an integer, got str 'eight'"),
    ({"data": {"batch_size": 8.5}}, r"data\.batch_size: expected an integer"),
    ({"run": {"deterministic": 1}}, r"run\.deterministic: expected true/false"),
    ({"optim": {"lr": "fast"}}, r"optim\.lr: expected a number"),
    ({"optim": {"betas": [0.9]}}, r"optim\.betas: expected a list of 2 items"),
    ({"optim": {"lr": -1}}, r"optim\.lr: must be a finite number > 0"),
    ({"optim": {"warmup_epochs": 20, "epochs": 5}}, r"optim\.warmup_epochs: must be in \[0, epochs=5\]"),
    ({"model": {"attention": "cosine"}}, r"model\.attention: must be one of \['hamming', 'dot', 'softmax'\]"),
    ({"model": {"embed_dim": [16, 32]}}, r"model\.embed_dim: must be null or 4 positive"),
    ({"run": {"device": "gpu"}}, r"run\.device"),
    ({"model": 3}, r"section 'model' must be a mapping"),
])
def test_type_and_value_errors_name_the_key(raw, match):
    with pytest.raises(ConfigError, match=match):
        load_config(raw)


def test_overrides_parse_yaml_values(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 3e-4\nmodel:\n  init: weights.safetensors\n")  # YAML 1.1: 3e-4 is a str
    cfg = load_config(p, ["optim.lr=5e-4", "data.batch_size=8", "model.embed_dim=[16, 32, 64, 80]",
                          "model.init=null", "run.sync_bn=true", "optim.grad_clip=~", "run.out_dir=runs/x"])
    assert cfg.optim.lr == 5e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.data.batch_size == 8 and cfg.model.embed_dim == (16, 32, 64, 80)
    assert cfg.model.init is None and cfg.run.sync_bn is True and cfg.optim.grad_clip is None
    assert load_config(p).optim.lr == 3e-4
    # a TrainConfig input is copied, not mutated
    cfg2 = load_config(cfg, ["optim.epochs=3"])
    assert cfg2.optim.epochs == 3 and cfg.optim.epochs == 10


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(tmp_path, suffix):
    cfg = load_config(None, ["optim.lr=2e-4", "model.embed_dim=[8,16,32,40]", "run.seed=7"])
    path = save_config(cfg, tmp_path / f"sub/cfg{suffix}")
    assert load_config(path) == cfg
    assert to_dict(load_config(path)) == to_dict(cfg)
    assert [p.name for p in path.parent.iterdir()] == [f"cfg{suffix}"]  # atomic: no temp files left
    if suffix == ".yaml":
        assert yaml.safe_load(path.read_text())["model"]["embed_dim"] == [8, 16, 32, 40]
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_every_key_is_documented():
    text = DOC.read_text()
    cfg = load_config()
    for section in dataclasses.fields(cfg):
        for f in dataclasses.fields(getattr(cfg, section.name)):
            assert re.search(rf"`{section.name}\.{f.name}`", text), f"{section.name}.{f.name} undocumented"
