"""Fingerprint of the numbers the library computes, to show that a refactor changed none.

Writes one JSON of SHA-256 digests and report texts: model outputs (eval mode, lively random
BatchNorm so that the networks fire) of every attention x design of svf_tiny and of the
official reference case, the folded model's outputs, the energy profile table, per-stage
gradient norms, state_dict key lists, and the runs.csv of a tiny ablation study.

    python benchmarks/numbers_snapshot.py --out /tmp/before.json   # before a change
    python benchmarks/numbers_snapshot.py --out /tmp/after.json    # after it
    diff /tmp/before.json /tmp/after.json                           # must be empty
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().cpu().numpy().tobytes()).hexdigest()[:16]


def snapshot() -> dict:
    from helpers import REFERENCE, lively_bn
    import spikevideoformer as svf
    from spikevideoformer.analysis import profile
    from spikevideoformer.analysis.grad_scale import stage_grad_norms
    from spikevideoformer.deploy import fold

    torch.set_num_threads(1)
    out: dict = {}
    g = torch.Generator().manual_seed(0)
    video = torch.rand(2, 3, 3, 64, 64, generator=g)
    target = torch.tensor([1, 3])
    for attention in ("hamming", "dot"):
        for design in ("joint", "spatial", "factorized", "hierarchical"):
            for spike_max in (1, 4):
                key = f"svf_tiny/{attention}/{design}/D{spike_max}"
                torch.manual_seed(0)
                m = lively_bn(svf.create_model("svf_tiny", num_classes=5, attention=attention,
                                               design=design, spike_max=spike_max)).eval()
                with torch.no_grad():
                    y = m(video)
                    yf = fold(m)(video)
                rep = profile(m, video)
                torch.manual_seed(0)
                grads = stage_grad_norms(m, video, target)
                out[key] = {"eval": digest(y), "folded": digest(yf), "energy_table": rep.table(),
                            "energy_mj": rep.total_energy_mj,
                            "grad_norms": {k: float(f"{v:.6e}") for k, v in grads.items()},
                            "keys": hashlib.sha256("\n".join(m.state_dict()).encode()).hexdigest()[:16]}
    case = REFERENCE / "official_tiny_3D_ham"
    m = svf.load_official_checkpoint(case / "state_dict.pt").eval()
    vid = torch.load(case / "video_input.pt", weights_only=True).transpose(0, 1)
    with torch.no_grad():
        out["official"] = {"logits": digest(m(vid)), "folded": digest(fold(m)(vid))}
    out["official"]["energy_table"] = profile(m, vid).table()
    from spikevideoformer.tasks.ablations import run_ablations
    from dataclasses import asdict
    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()):
        runs = run_ablations(ROOT / "src/spikevideoformer/configs/demo.yaml", d, seeds=(0,),
                      variants=["hamming/joint (full)", "spatial, no temporal state"],
                      overrides=["data.train_samples=32", "data.val_samples=16", "data.batch_size=16",
                                 "data.num_frames=2", "optim.epochs=2", "optim.warmup_epochs=0"],
                      log=lambda _: None)
        out["ablation_runs"] = [{k: v for k, v in asdict(r).items() if k != "seconds"}
                                for r in runs]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    from spikevideoformer.atomic import write_text
    write_text(args.out, json.dumps(snapshot(), indent=1, sort_keys=True))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
