"""Integer-only network vs the float folded model on the demo checkpoints (docs/integer.md).

    python benchmarks/integer_agreement.py                 # trains missing demos into runs/integer-bench
    python benchmarks/integer_agreement.py --clips 32 --no-events

Prints (1) bits x checkpoint: identical spikes %, identical predictions %, metric (float and
integer); (2) counted vs estimated operations per stage on one clip; (3) runner time relative to
the float model. Checkpoints: classification (``svf demo``), segmentation with Integer-LIF D = 4
(``svf demo --task segmentation``: backbone and spike-driven decoder; identical predictions are
pixels, the metric is mIoU) and events (``svf demo --modality event``). Missing ones are trained
with a short budget.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

TRAIN = {  # short budgets (1 thread, a few minutes each)
    "classification": ("demo", ["optim.epochs=8", "data.train_samples=1500"]),
    "segmentation": ("seg_demo", ["optim.epochs=3", "data.train_samples=512"]),
    "events": ("demo", ["data.modality=event", "optim.epochs=4", "data.train_samples=800"]),
}


def _train(kind: str, out: Path) -> None:
    from spikevideoformer.engine.named_configs import load_named_config
    from spikevideoformer.tasks.fit import fit_task

    name, overrides = TRAIN[kind]
    cfg = load_named_config(name, overrides, out_dir=out)
    print(f"training the {kind} demo into {out} ({' '.join(overrides)})", flush=True)
    fit_task(cfg, None, False)  # the task named by the config (run.task)


def _checkpoint(kind: str, runs: Path, train: bool):
    """``(model, cfg)`` of the demo checkpoint ``runs/<kind>/best`` (trained if missing)."""
    from spikevideoformer.tasks.common import load_trained

    d = runs / kind
    if not (d / "best").is_dir():
        if not train:
            return None
        _train(kind, d)
    if kind == "segmentation":
        from spikevideoformer.tasks.segmentation.runner import build_segmentation_model
        model, cfg, _ = load_trained(d / "best", build_segmentation_model)
    else:
        from spikevideoformer.tasks.classification.runner import build_classifier
        model, cfg, _ = load_trained(d / "best", build_classifier)
    return model.eval(), cfg


def _clips(kind: str, cfg, n: int) -> list[tuple[np.ndarray, object]]:
    """``n`` held-out clips as uint8 ``[T, H, W, C]`` with their labels (segmentation: the
    masks ``[T, H, W]``; the split ``svf demo --task segmentation`` scores)."""
    out = []
    if kind == "segmentation":
        from spikevideoformer.tasks.segmentation.synthetic import SyntheticSegVideos
        ds = SyntheticSegVideos("test", n, cfg.data.num_frames, cfg.data.size, cfg.model.num_classes,
                                cfg.run.seed)
        return [(np.rint(clip.numpy() * 255).astype(np.uint8).transpose(0, 2, 3, 1), masks.numpy())
                for clip, masks in (ds[i] for i in range(n))]
    from spikevideoformer.data.moving_digits import MovingDigits
    from spikevideoformer.tasks.classification.data import to_modality
    event = cfg.data.modality == "event"
    ds = MovingDigits("test", num_samples=n, num_frames=cfg.data.num_frames + event,
                      size=cfg.data.size, num_classes=cfg.model.num_classes, seed=cfg.run.seed + 1)
    for i in range(n):
        clip, label = ds[i]
        if event:
            x = to_modality(clip, "event").numpy()          # integer ON/OFF counts
            assert x.max() <= 255 and (x == np.round(x)).all()
        else:
            x = np.rint(clip.numpy() * 255)
        out.append((x.astype(np.uint8).transpose(0, 2, 3, 1), label))
    return out


def agreement_rows(kind, model, cfg, clips, bits_list):
    """Per weight width: identical spikes %, identical predictions % (clips; segmentation:
    pixels of the read-out) and the metric (accuracy; segmentation: mIoU), float and integer."""
    from spikevideoformer.deploy import fold
    from spikevideoformer.deploy.integer import IntegerNetwork, compare

    folded = fold(model)
    scale = 1.0 if cfg.data.modality == "event" else 1 / 255
    size = (cfg.data.size, cfg.data.size)
    rows = []
    for bits in bits_list:
        net = IntegerNetwork.from_model(folded, bits, input_size=size, input_scale=scale)
        same = total = pred_same = pred_total = whole = 0
        dec = [0, 0]
        if kind == "segmentation":
            from spikevideoformer.tasks.segmentation.metrics import ConfusionMatrix
            cm_f, cm_i = ConfusionMatrix(cfg.model.num_classes), ConfusionMatrix(cfg.model.num_classes)
        else:
            acc_f = acc_i = 0
        for clip, label in clips:
            a = compare(folded, net, clip)
            for name, (s, t) in a.layers.items():
                same, total = same + s, total + t
                if name.startswith("head."):  # the segmentation decoder's neurons
                    dec[0], dec[1] = dec[0] + s, dec[1] + t
            pred_same += int(np.sum(a.float_pred == a.int_pred))
            whole += a.same_prediction
            pred_total += int(np.size(a.int_pred))
            if kind == "segmentation":
                cm_f.update(a.float_pred, label)
                cm_i.update(a.int_pred, label)
            else:
                acc_f += int(a.float_pred) == label
                acc_i += int(a.int_pred) == label
        if kind == "segmentation":
            m_f, m_i = 100 * cm_f.compute()["miou"], 100 * cm_i.compute()["miou"]
        else:
            m_f, m_i = 100 * acc_f / len(clips), 100 * acc_i / len(clips)
        rows.append(dict(checkpoint=kind, bits=bits, spikes=100 * same / total, whole=whole,
                         decoder=100 * dec[0] / dec[1] if dec[1] else None,
                         preds=100 * pred_same / pred_total, metric="mIoU" if kind == "segmentation"
                         else "acc", float=m_f, int=m_i, clips=len(clips)))
    return rows


def ops_per_stage(model, cfg, clip, bits=16):
    """Per stage ``(est SOPs, counted adds, est real MACs, counted MACs)`` and per layer type
    ``(est, counted)`` on one clip (16-bit weights: nearly the float model's spikes)."""
    from spikevideoformer.analysis import profile
    from spikevideoformer.deploy import fold
    from spikevideoformer.deploy.integer import IntegerNetwork

    folded = fold(model)
    net = IntegerNetwork.from_model(folded, bits, input_size=(cfg.data.size,) * 2, input_scale=1 / 255)
    res = net.run(clip)
    counted = res.counts.by_stage()
    rep = profile(folded, net.float_input(clip))
    real = {s: sum(r.macs for r in rep.layers if r.stage == s and r.input == "real") for s in counted}
    est = rep.by_stage()
    stages = [(s, est[s].sops, counted[s]["additions"], real[s], counted[s]["macs"])
              for s in est if s in counted]
    geom = {op["name"]: (net.tensors[op["params"]["weight"]].shape[-1], op["attrs"]["stride"])
            for op in net.graph["ops"] if op["op"] == "conv"}
    estimated = {r.name: r for r in rep.layers}
    kinds: dict[str, list[float]] = {}
    for r in res.counts.rows:
        k, st = geom.get(r.name, (1, 1))
        key = ("real-fed (MACs)" if r.input == "real" else "1x1 conv / linear / attention" if k == 1
               else f"{k}x{k} conv, stride {st}")
        e = estimated[r.name]
        acc = kinds.setdefault(key, [0.0, 0.0])
        acc[0] += e.macs if r.input == "real" else e.sops
        acc[1] += r.ops
    return stages, kinds


def speed(model, cfg, clip, repeats=9):
    from spikevideoformer.deploy import fold
    from spikevideoformer.deploy.integer import IntegerNetwork

    folded = fold(model)
    net = IntegerNetwork.from_model(folded, 8, input_size=(cfg.data.size,) * 2, input_scale=1 / 255)
    video = net.float_input(clip)
    t_f, t_i = [], []
    with torch.no_grad():
        for i in range(repeats + 2):
            t0 = time.perf_counter()
            folded(video)
            t1 = time.perf_counter()
            net.run(clip)
            t2 = time.perf_counter()
            if i >= 2:
                t_f.append(t1 - t0)
                t_i.append(t2 - t1)
    return statistics.median(t_f), statistics.median(t_i)


def _ops_and_speed(kind: str, model, cfg) -> None:
    clip = _clips(kind, cfg, 1)[0][0]
    stages, kinds = ops_per_stage(model, cfg, clip)
    print(f"\ncounted (integer network, 16-bit) vs estimated (analysis.profile, float) operations "
          f"on one {kind} clip {list(clip.shape)}, per stage"
          + (" (head: the decoder)" if kind == "segmentation" else ""))
    print(f"{'stage':<8} {'est. SOPs':>12} {'counted adds':>13} {'ratio':>7} {'est. MACs':>11} "
          f"{'counted MACs':>13}")
    for s, sops, adds, macs, cmacs in stages:
        ratio = f"{adds / sops:.4f}" if sops else "-"
        print(f"{s:<8} {sops:>12.0f} {adds:>13d} {ratio:>7} {macs:>11.0f} {cmacs:>13d}")
    print(f"\nthe same, per layer type\n{'layers':<32} {'estimated':>12} {'counted':>12} {'ratio':>7}")
    for k, (e, c) in sorted(kinds.items()):
        print(f"{k:<32} {e:>12.0f} {c:>12.0f} {(c / e if e else float('nan')):>7.4f}")
    tf, ti = speed(model, cfg, clip)
    print(f"\nspeed, one {kind} clip {list(clip.shape)}: float folded model {1e3 * tf:.2f} ms, "
          f"NumPy integer runner {1e3 * ti:.2f} ms: runner / float = {ti / tf:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", default="runs/integer-bench", help="demo checkpoints (trained if missing)")
    ap.add_argument("--clips", type=int, default=64, help="held-out clips per checkpoint")
    ap.add_argument("--bits", default="8,16")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-events", action="store_true", help="skip the event-camera demo")
    ap.add_argument("--only", choices=tuple(TRAIN), help="one checkpoint only")
    ap.add_argument("--no-train", action="store_true", help="use only checkpoints that exist")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from spikevideoformer.machine import cpu_model

    runs, bits = Path(args.runs), [int(b) for b in args.bits.split(",")]
    kinds = ["classification", "segmentation"] + ([] if args.no_events else ["events"])
    kinds = [args.only] if args.only else kinds
    rows, loaded = [], {}
    for kind in kinds:
        got = _checkpoint(kind, runs, not args.no_train)
        if got is None:
            print(f"{kind}: no checkpoint in {runs / kind}, skipped")
            continue
        loaded[kind] = got
        clips = _clips(kind, got[1], args.clips)
        rows += agreement_rows(kind, *got, clips, bits)
    print(f"\nCPU: {cpu_model()}, {args.threads} thread(s); {args.clips} held-out clips per checkpoint")
    print("identical predictions: clips (segmentation: pixels of the read-out); metric: accuracy "
          "(segmentation: mIoU), %")
    print(f"\n{'checkpoint':<15} {'bits':>4} {'identical spikes %':>19} {'identical preds %':>18} "
          f"{'metric':>6} {'float':>7} {'integer':>8} {'delta':>6}")
    for r in rows:
        print(f"{r['checkpoint']:<15} {r['bits']:>4} {r['spikes']:>19.3f} {r['preds']:>18.3f} "
              f"{r['metric']:>6} {r['float']:>7.2f} {r['int']:>8.2f} {r['int'] - r['float']:>+6.2f}")
    for r in rows:
        if r["checkpoint"] == "segmentation":
            print(f"segmentation, {r['bits']} bits: decoder neurons {r['decoder']:.3f} % identical spikes; "
                  f"{r['whole']} of {r['clips']} clips identical at every pixel")
    for kind in ("classification", "segmentation"):
        if kind in loaded:
            _ops_and_speed(kind, *loaded[kind])

if __name__ == "__main__":
    main()
