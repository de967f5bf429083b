"""Bad user input to ``svf`` gives one ``svf <cmd>: error: ...`` line naming the file, no traceback."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spikevideoformer.cli import main
from spikevideoformer.engine.checkpoint import save_checkpoint
from spikevideoformer.engine.config import load_config, to_dict
from spikevideoformer.engine.schedule import build_optimizer
from spikevideoformer.tasks.classification.runner import build_classifier

CONFIG = "src/spikevideoformer/configs/demo.yaml"
TINY = ["data.size=16", "data.num_frames=2", "data.train_samples=8", "data.val_samples=8",
        "data.batch_size=4", "optim.epochs=1"]


@pytest.fixture(scope="module")
def checkpoint_template(tmp_path_factory) -> Path:
    """A complete ``run/last`` checkpoint of a tiny classifier, written directly (no training)."""
    run = tmp_path_factory.mktemp("template") / "run"
    cfg = load_config(CONFIG, TINY + [f"run.out_dir={run}"])
    model = build_classifier(cfg)
    trainer = {"epoch": 0, "epoch_step": 0, "global_step": 0, "steps_per_epoch": 2,
               "world_size": 1, "best_metric": None, "best_epoch": None}
    save_checkpoint(run / "last", model, build_optimizer(model, cfg.optim), None, epoch=0, step=0,
                    config=to_dict(cfg), extra_state={"trainer": trainer})
    return run


@pytest.fixture
def run_dir(tmp_path, checkpoint_template) -> Path:
    return Path(shutil.copytree(checkpoint_template, tmp_path / "run"))


def truncate(path: Path, fraction: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])


def one_error_line(capsys, argv: list[str], names) -> str:
    """Run ``svf argv``; check the exit code and that stderr is one error line naming ``names``."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"svf {argv[0]}: error: "), err
    assert str(names) in lines[0], err
    return lines[0]


def test_truncated_model_file(capsys, run_dir, tmp_path):
    model = run_dir / "last" / "model.safetensors"
    truncate(model)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 64)
    msg = one_error_line(capsys, ["predict", video, "--checkpoint", run_dir / "last"], model)
    assert "truncated" in msg
    one_error_line(capsys, ["eval", "--checkpoint", run_dir / "last"], model)


def test_missing_model_file(capsys, run_dir):
    model = run_dir / "last" / "model.safetensors"
    model.unlink()
    one_error_line(capsys, ["eval", "--checkpoint", run_dir / "last"], model)


def test_truncated_train_state_on_resume(capsys, run_dir):
    state = run_dir / "last" / "train_state.safetensors"
    truncate(state)
    one_error_line(capsys, ["train", "--config", CONFIG, "--quiet", "--out", run_dir,
                            "--resume", run_dir / "last", *TINY], state)


def test_corrupt_safetensors_header_with_the_right_size(capsys, run_dir):
    """Size matches meta.json, so safetensors itself must fail: its error is converted."""
    model = run_dir / "last" / "model.safetensors"
    data = bytearray(model.read_bytes())
    data[8:24] = b"x" * 16  # the JSON header starts after its 8-byte length
    model.write_bytes(bytes(data))
    msg = one_error_line(capsys, ["eval", "--checkpoint", run_dir / "last"], model)
    assert "header" in msg


def test_corrupt_meta_json_and_config(capsys, run_dir):
    meta = run_dir / "last" / "meta.json"
    text = meta.read_text()
    meta.write_text(text.replace('"attention": "hamming"', '"attention": "cosine"'))
    msg = one_error_line(capsys, ["eval", "--checkpoint", run_dir / "last"], meta)
    assert "model.attention" in msg
    meta.write_text(text[: len(text) // 2])
    one_error_line(capsys, ["eval", "--checkpoint", run_dir / "last"], meta)


def test_malformed_yaml_config(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: [svf_tiny\n  attention: dot\n")
    msg = one_error_line(capsys, ["train", "--config", bad, "--out", tmp_path / "out"], bad)
    assert "line" in msg
    bad.write_bytes(b"model:\n  name: \xff\xfe\n")
    one_error_line(capsys, ["train", "--config", bad, "--out", tmp_path / "out"], bad)


def test_non_video_file(capsys, run_dir, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(bytes(range(256)) * 40)
    one_error_line(capsys, ["predict", video, "--checkpoint", run_dir / "last"], video)


def test_directory_or_file_where_the_other_is_expected(capsys, run_dir, tmp_path):
    one_error_line(capsys, ["predict", tmp_path, "--checkpoint", run_dir / "last"], tmp_path)
    one_error_line(capsys, ["train", "--config", tmp_path], tmp_path)
    not_a_dir = run_dir / "last" / "meta.json.bak"
    shutil.copy(run_dir / "last" / "meta.json", not_a_dir)
    one_error_line(capsys, ["eval", "--checkpoint", not_a_dir], not_a_dir)
    msg = one_error_line(capsys, ["eval", "--checkpoint", run_dir], run_dir)  # the run, not run/last
    assert str(run_dir / "last") in msg


def test_bad_weights_files(capsys, tmp_path):
    pth, st = tmp_path / "w.pth", tmp_path / "w.safetensors"
    pth.write_bytes(b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01cos\nsystem\nq\x02u.")
    st.write_bytes(bytes(range(100)))
    for path in (pth, st):
        msg = one_error_line(capsys, ["energy", "--checkpoint", path, "--summary"], path)
        assert "documentation" not in msg  # torch's long weights_only explanation is cut
        one_error_line(capsys, ["train", "--config", CONFIG, "--quiet", "--init", path,
                                "--out", tmp_path / "out", *TINY], path)


def test_bad_arguments(capsys, run_dir, tmp_path):
    one_error_line(capsys, ["predict", tmp_path / "x.mp4", "--checkpoint", run_dir / "last",
                            "--topk", "0"], "--topk")
    one_error_line(capsys, ["eval", "--checkpoint", run_dir / "last", "--clips", "0"], "--clips")
    one_error_line(capsys, ["energy", "--model", "svf_tiny", "--frames", "0"], "--frames")
    one_error_line(capsys, ["energy", "--model", "svf_tiny", "--device", "gpu0"], "gpu0")
    one_error_line(capsys, ["models", "--num-classes", "-1"], "--num-classes")
    out_file = tmp_path / "taken"
    out_file.write_text("")
    one_error_line(capsys, ["train", "--config", CONFIG, "--out", out_file], out_file)


def test_a_real_bug_keeps_its_traceback(monkeypatch):
    import spikevideoformer.cli.models as models_cmd

    def broken(args):
        raise KeyError("internal")
    monkeypatch.setattr(models_cmd, "run", broken)
    with pytest.raises(KeyError):
        main(["models"])
