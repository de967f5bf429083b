"""Task and dataset tables: every task trains through the shared fit helper; unknown names
give one clear error listing the registered ones; named configs; no import of cli outside cli."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from spikevideoformer.cli import main
from spikevideoformer.engine.config import load_config
from spikevideoformer.engine.named_configs import load_named_config, resolve_config, shipped_configs
from spikevideoformer.tasks import datasets as dataset_table
from spikevideoformer.tasks import registry
from spikevideoformer.tasks.datasets import TaskData, build_dataset, dataset_names, register_dataset
from spikevideoformer.tasks.fit import fit_task
from spikevideoformer.tasks.registry import TaskSpec, get_task, register_task, task_names

PKG = Path(__file__).resolve().parents[1] / "src" / "spikevideoformer"
# one tiny run per registered task: (shipped config, overrides)
TINY = {
    "classification": ("demo", ["data.train_samples=8", "data.val_samples=4", "data.batch_size=4",
                                "data.num_frames=2", "data.size=16"]),
    "pose": ("pose_demo", ["data.train_samples=4", "data.val_samples=2", "data.batch_size=2",
                           "data.num_frames=2", "data.size=32"]),
    "segmentation": ("seg_demo", ["data.train_samples=4", "data.val_samples=2", "data.batch_size=2",
                                  "data.num_frames=2", "data.size=32"]),
}
ONE_STEP = ["optim.epochs=1", "optim.warmup_epochs=0"]


def tiny_cfg(task: str, out: Path, *extra: str):
    name, over = TINY[task]
    return load_named_config(name, over + ONE_STEP + list(extra), out_dir=out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Each registered task trained for one epoch through :func:`fit_task`."""
    root = tmp_path_factory.mktemp("registry")
    return {t: (root / t, fit_task(tiny_cfg(t, root / t), progress=False)) for t in task_names()}


def test_every_registered_task_trains_through_the_shared_helper(trained):
    assert set(TINY) == set(task_names()), "add a tiny config for the new task to TINY"
    for task, (out, res) in trained.items():
        assert res["step"] >= 1 and res["main_metric"] in res, task
        assert (out / "best" / "model.safetensors").is_file() and (out / "metrics.jsonl").is_file()
        assert load_config(out / "config.yaml").run.task == task
    assert json.loads((trained["classification"][0] / "classes.json").read_text())["classes"]
    assert (trained["pose"][0] / "pose_meta.json").is_file()


def test_unknown_task_is_one_clear_error(tmp_path, capsys):
    names = ", ".join(task_names())
    with pytest.raises(ValueError, match=f"unknown task 'depth'.*registered tasks: {names}"):
        get_task("depth")
    cfg = tiny_cfg("classification", tmp_path, "run.task=depth")
    with pytest.raises(ValueError, match=f"registered tasks: {names}"):
        fit_task(cfg, progress=False)
    assert not (tmp_path / "metrics.jsonl").exists()
    assert main(["train", "--config", "demo", "--out", str(tmp_path), "run.task=depth"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown task 'depth'" in err[0] and names in err[0]


@pytest.mark.parametrize("task", sorted(TINY))
def test_unknown_dataset_lists_the_tasks_datasets(task, tmp_path):
    known = dataset_names(task)
    assert known and set(known) <= set(dataset_names())
    cfg = tiny_cfg(task, tmp_path, "data.dataset=no_such_data")
    with pytest.raises(ValueError, match=f"unknown data.dataset 'no_such_data' for run.task={task}; "
                                         f"{task} datasets: {', '.join(known)}"):
        get_task(task).build_data(cfg)
    other = next(n for n in dataset_names() if n not in known)  # another task's dataset
    with pytest.raises(ValueError, match=f"'{other}' is a .* dataset, not one for run.task={task}"):
        build_dataset(task, load_config(cfg, [f"data.dataset={other}"]).data)


def test_a_registered_dataset_and_task_are_used(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_table, "_DATASETS", dict(dataset_table._DATASETS))
    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))
    calls = []

    def build_digits(data_cfg, *, num_classes, seed, splits, **options):
        calls.append(splits)
        return build_dataset("classification", load_config(None, [
            "data.dataset=moving_digits", f"data.size={data_cfg.size}",
            f"data.num_frames={data_cfg.num_frames}", f"data.train_samples={data_cfg.train_samples}",
            f"data.val_samples={data_cfg.val_samples}"]).data, num_classes=num_classes, seed=seed)
    register_dataset("my_digits", "classification", build_digits)

    class Renamed(type(get_task("classification"))):
        name = "my_classification"
    register_task(Renamed())
    assert "my_classification" in task_names() and "my_digits" in dataset_names("classification")
    cfg = tiny_cfg("classification", tmp_path, "run.task=my_classification", "data.dataset=my_digits")
    res = fit_task(cfg, progress=False)
    assert calls == [("train", "val")] and res["val_num_samples"] == 4
    with pytest.raises(TypeError):
        register_task("no_target")
    with pytest.raises(ValueError, match="needs a name"):
        register_task(TaskSpec())


def test_task_options_are_checked(tmp_path):
    cfg = tiny_cfg("classification", tmp_path)
    with pytest.raises(ValueError, match="smpl_model not used by the classification task"):
        fit_task(cfg, smpl_model="SMPL_NEUTRAL.pkl")
    assert get_task("pose").options == ("smpl_model",)


def test_predict_needs_a_task_with_predictions(trained, tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 64)
    assert main(["predict", str(video), "--checkpoint", str(trained["segmentation"][0] / "best")]) == 2
    err = capsys.readouterr().err
    assert "task with predictions (classification)" in err and "'segmentation'" in err
    assert main(["eval", "--checkpoint", str(trained["segmentation"][0] / "best"), "--clips", "2"]) == 2
    assert "classification evaluation only" in capsys.readouterr().err


def test_named_configs(tmp_path):
    assert {"demo", "pose_demo", "seg_demo", "ablate"} <= set(shipped_configs())
    assert resolve_config("demo").name == "demo.yaml"
    with pytest.raises(FileNotFoundError, match="neither a file nor a shipped config .*demo"):
        resolve_config("no_such_config")
    with pytest.raises(ValueError, match="is a directory"):
        resolve_config(tmp_path)
    taken = tmp_path / "taken"
    taken.write_text("")
    with pytest.raises(ValueError, match="existing file"):
        load_named_config("demo", out_dir=taken)
    cfg = load_named_config("seg_demo", ["optim.epochs=2"], out_dir=tmp_path / "o")
    assert (cfg.run.task, cfg.optim.epochs, cfg.run.out_dir) == ("segmentation", 2, str(tmp_path / "o"))
    with pytest.raises(ValueError, match="run.device 'cuda:9'"):
        load_named_config("demo", ["run.device=cuda:9"])


def test_nothing_outside_cli_imports_cli():
    bad = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).parts
        if rel[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                absolute = mod.split(".") if node.level == 0 else \
                    ["spikevideoformer", *rel[:len(rel) - node.level], *mod.split(".")]
                if absolute[:2] == ["spikevideoformer", "cli"]:
                    bad.append(f"{'/'.join(rel)}:{node.lineno}")
    assert not bad, bad
