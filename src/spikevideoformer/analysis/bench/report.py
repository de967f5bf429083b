"""Reporting a bench run: headline ratios, CSV files, text / Markdown tables, one figure.

Only measurements: the targets of the efficiency work (and whether a run meets them) are
kept by the benchmark scripts (``benchmarks/bench_goals.py``), not by the library.
"""
from __future__ import annotations

import math
import os

from ...atomic import save_figure
from ...atomic import write_csv as atomic_write_csv

__all__ = ["REPORTED", "VARIANT_TITLES", "summarize", "write_csv", "format_report", "plot"]

#: ``target`` of a summary row that no goal judges
REPORTED = "(reported)"
#: table / legend titles of the bench variants (``sections.VARIANTS``)
VARIANT_TITLES = {
    "joint": "joint SDHA (ours)", "spatial": "spatial-only SDHA", "factorized": "factorized SDHA",
    "hierarchical": "hierarchical SDHA", "ann": "ANN (softmax, joint, ReLU)",
}


# --------------------------------------------------------------------------- summary
def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def summarize(results: dict) -> list[dict]:
    """The headline ratios of a run as rows ``(goal, value, target, met)``.

    The library judges nothing: ``target`` is ``"(reported)"`` and ``met`` is ``None``;
    targets live with the benchmark scripts (``benchmarks/bench_goals.py`` fills both).
    """
    out = []

    def add(goal: str, value: float | None) -> None:
        out.append(dict(goal=goal, value=value, target=REPORTED, met=None))

    def both(rows: dict, a: str, b: str, goal: str) -> None:
        """Add the wall-time ratio a/b and, on CPU runs, the CPU-time ratio."""
        for key, tag in (("time_ms", ""), ("cpu_ms", " [CPU time]")):
            x, y = rows[a].get(key), rows[b].get(key)
            if key == "cpu_ms" and (x is None or y is None):
                continue
            add(goal + tag, _ratio(x, y))

    lif = {r["name"]: r for r in results.get("lif", [])}
    if "svf" in lif and "sj" in lif:
        both(lif, "sj", "svf", "LIF fwd+bwd speed-up vs SpikingJelly (x)")
        add("LIF fwd+bwd peak memory vs SpikingJelly (ratio)",
            _ratio(lif["svf"]["peak_mb"], lif["sj"]["peak_mb"]))
    tr = {r["name"]: r for r in results.get("train", [])}
    if "svf" in tr and "sj" in tr:
        both(tr, "sj", "svf", "train step speed-up vs SpikingJelly LIF (x)")
        add("train step peak memory vs SpikingJelly LIF (ratio)",
            _ratio(tr["svf"]["peak_mb"], tr["sj"]["peak_mb"]))
        if "svf_compact" in tr:
            both(tr, "sj", "svf_compact", "train step speed-up vs SJ, with compact_spike_storage (x)")
            add("train step peak memory vs SJ, with compact_spike_storage (ratio)",
                _ratio(tr["svf_compact"]["peak_mb"], tr["sj"]["peak_mb"]))
    sc = results.get("scaling", [])
    frames = sorted({r["T"] for r in sc})
    if {8, 32} <= set(frames):
        lo, hi = 8, 32
    else:
        lo, hi = (frames[0], frames[-1]) if frames else (None, None)
    if lo is not None and lo != hi:
        by = {(r["name"], r["T"]): r for r in sc}
        for k in dict.fromkeys(r["name"] for r in sc):
            if (k, lo) in by and (k, hi) in by:
                name = "joint SDHA" if k == "joint" else k
                both({"hi": by[(k, hi)], "lo": by[(k, lo)]}, "hi", "lo",
                     f"latency T={hi} / T={lo}, {name} (x)")
                add(f"peak memory T={hi} / T={lo}, {k} (x)",
                    _ratio(by[(k, hi)]["peak_mb"], by[(k, lo)]["peak_mb"]))
    _summarize_models(results, add)
    return out


def _summarize_models(results: dict, add) -> None:
    """Ratios of the ``ckpt``, ``compile`` and ``fold`` sections."""
    ck = results.get("ckpt", [])
    for T in dict.fromkeys(r["T"] for r in ck):
        by = {r["name"]: r for r in ck if r["T"] == T}
        if {"plain", "checkpointed"} <= set(by):
            p, c = by["plain"], by["checkpointed"]
            add(f"grad checkpointing activation memory reduction, T={T} (x)",
                _ratio(p["act_peak_mb"], c["act_peak_mb"]))
            add(f"grad checkpointing step time, T={T} (x)", _ratio(c["time_ms"], p["time_ms"]))
            if p.get("cpu_ms") is not None and c.get("cpu_ms") is not None:
                add(f"grad checkpointing step time, T={T} (x) [CPU time]",
                    _ratio(c["cpu_ms"], p["cpu_ms"]))
    for sec, a, b, goal in (("compile", "eager", "compiled", "torch.compile speed-up vs eager"),
                            ("fold", "unfolded", "folded", "fold speed-up vs unfolded")):
        by = {r["name"]: r for r in results.get(sec, [])}
        if a in by and b in by:
            tag = (f" ({by[b]['backend']})" if sec == "compile" else "")
            add(f"{goal}{tag} (x)", _ratio(by[a]["time_ms"], by[b]["time_ms"]))
            if by[a].get("cpu_ms") is not None and by[b].get("cpu_ms") is not None:
                add(f"{goal}{tag} (x) [CPU time]", _ratio(by[a]["cpu_ms"], by[b]["cpu_ms"]))


# --------------------------------------------------------------------------- output
def write_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    """Benchmark rows as CSV (floats to 6 significant digits), written atomically; no rows, no file."""
    if rows:
        atomic_write_csv(path, rows, float_format=".6g")


def _fmt(v, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def format_report(results: dict, markdown: bool = False) -> str:
    """Human-readable tables of one run (plain text, or Markdown with ``markdown=True``)."""
    lines: list[str] = []

    def table(head: list[str], rows: list[list[str]]) -> None:
        if markdown:
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "|".join("---" for _ in head) + "|")
            for r in rows:
                lines.append("| " + " | ".join(r) + " |")
        else:
            w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
            lines.append("  ".join(h.ljust(w[i]) for i, h in enumerate(head)))
            for r in rows:
                lines.append("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
        lines.append("")

    info = results.get("machine", {})
    where = ""
    if info:
        m = ", ".join(f"{k}={v}" for k, v in info.items() if v is not None)
        where = (f" [{info.get('gpu') or info.get('cpu', '?')}, "
                 f"{info.get('torch_threads', '?')} thread(s)]")
        lines += ["Machine: " + m, f"CPU: {info.get('cpu', '?')}; torch threads: "
                  f"{info.get('torch_threads', '?')}" + (f"; GPU: {info['gpu']}" if info.get("gpu") else ""), ""]
    lif = results.get("lif", [])
    if lif:
        lines.append(f"LIF forward+backward, x = [{lif[0]['shape'].replace('x', ', ')}] float32 "
                     f"(median of {lif[0]['reps']})")
        table(["implementation", "fwd+bwd ms", "CPU ms", "fwd ms", "bwd ms", "peak MB",
               "bytes/elem", "GB/s"],
              [[r["label"], _fmt(r["time_ms"], 2), _fmt(r.get("cpu_ms"), 2), _fmt(r["fwd_ms"], 2),
                _fmt(r["bwd_ms"], 2), _fmt(r["peak_mb"]), _fmt(r["bytes_per_element"]),
                _fmt(r.get("gb_s"), 2)]
               for r in lif])
        bw = [r for r in lif if r.get("copy_gb_s")]
        if bw:
            r = next((r for r in bw if r["name"] == "svf"), bw[0])
            lines.append(f"LIF memory bandwidth: the auto backend ({r.get('backend') or '?'}) moves "
                         f"{_fmt(r['gb_s'], 2)} GB/s (24 bytes read+written per element) vs "
                         f"{_fmt(r['copy_gb_s'], 2)} GB/s for a torch copy of the same bytes "
                         f"({_fmt(100 * r['gb_s'] / r['copy_gb_s'])}% of copy)")
            lines.append("")
    tr = results.get("train", [])
    if tr:
        r0 = tr[0]
        lines.append(f"Training step (forward + backward + SGD), {r0['model']}, B={r0['batch']}, "
                     f"T={r0['T']}, {r0['size']}x{r0['size']} (median of {r0['reps']}); "
                     f"train-mode outputs identical: "
                     f"{'not checked (network silent)' if r0['outputs_identical'] is None else r0['outputs_identical']}"
                     f"{where}")
        table(["model", "step ms", "CPU ms", "clips/s", "peak MB"],
              [[r["label"], _fmt(r["time_ms"]), _fmt(r.get("cpu_ms")), _fmt(r["clips_per_s"], 2),
                _fmt(r["peak_mb"])] for r in tr])
    sc = results.get("scaling", [])
    if sc:
        r0 = sc[0]
        frames = sorted({r["T"] for r in sc})
        names = list(dict.fromkeys(r["name"] for r in sc))
        by = {(r["name"], r["T"]): r for r in sc}
        lines.append(f"Inference forward latency (ms) vs T, {r0['model']}, B={r0['batch']}, "
                     f"{r0['size']}x{r0['size']} "
                     f"(stage-3 tokens per frame {(r0['size'] // 16) ** 2}; "
                     f"median of {r0['reps']}){where}")
        lo, hi = (8, 32) if {8, 32} <= set(frames) else (frames[0], frames[-1])
        head = ["design"] + [f"T={t}" for t in frames] + [f"T{hi}/T{lo}"]

        def vs_t(key: str) -> list:
            """One row per design: ``key`` at each T, then the T{hi}/T{lo} ratio."""
            rows = []
            for k in names:
                ratio = _ratio(by[(k, hi)][key], by[(k, lo)][key]) if (k, hi) in by else None
                rows.append([VARIANT_TITLES.get(k, k)]
                            + [_fmt(by[(k, t)][key], 0) if (k, t) in by else "-" for t in frames]
                            + [_fmt(ratio, 2)])
            return rows

        table(head, vs_t("time_ms"))
        if all(r.get("cpu_ms") is not None for r in sc):
            lines.append("Process CPU time per forward (ms) vs T (robust to other load)")
            table(head, vs_t("cpu_ms"))
        lines.append("Inference peak memory (MB) vs T")
        table(head, vs_t("peak_mb"))
        lines.append("Inference throughput (clips/s) vs T")
        table(head[:-1], [[VARIANT_TITLES.get(k, k)] + [_fmt(by[(k, t)]["clips_per_s"], 2)
                                                       if (k, t) in by else "-" for t in frames]
                          for k in names])
    _model_tables(results, table, lines, where)
    summ = results.get("summary", [])
    if summ and any(s["target"] != REPORTED for s in summ):
        lines.append("Goals")
        table(["goal", "measured", "target", "met"],
              [[s["goal"], _fmt(s["value"], 2), s["target"],
                "-" if s["met"] is None else ("yes" if s["met"] else "NO")] for s in summ])
    elif summ:
        lines.append("Summary")
        table(["ratio", "measured"], [[s["goal"], _fmt(s["value"], 2)] for s in summ])
    return "\n".join(lines)


def _model_tables(results: dict, table, lines: list[str], where: str) -> None:
    """The ``ckpt``, ``compile`` and ``fold`` tables."""
    ck = results.get("ckpt", [])
    if ck:
        r0 = ck[0]
        lines.append(f"Grad checkpointing, training step (forward + backward), {r0['model']}, "
                     f"B={r0['batch']}, {r0['size']}x{r0['size']} (median of {r0['reps']}){where}")
        table(["T", "variant", "act. peak MB", "step ms", "CPU ms"],
              [[str(r["T"]), r["name"], _fmt(r["act_peak_mb"]), _fmt(r["time_ms"]),
                _fmt(r.get("cpu_ms"))] for r in ck])
    co = results.get("compile", [])
    if co:
        r0 = co[0]
        comp = next((r for r in co if r["name"] == "compiled"), r0)
        lines.append(f"torch.compile vs eager inference, {r0['model']}, B={r0['batch']}, "
                     f"T={r0['T']}, {r0['size']}x{r0['size']}, eval, no_grad (median of "
                     f"{r0['reps']}); compile ({comp['backend']}) took {_fmt(comp['compile_s'])} s; "
                     f"max |logit diff| {r0['max_dlogit']:.2e}{where}")
        table(["variant", "ms", "CPU ms"],
              [[r["backend"], _fmt(r["time_ms"], 2), _fmt(r.get("cpu_ms"), 2)] for r in co])
    fo = results.get("fold", [])
    if fo:
        r0 = fo[0]
        lines.append(f"deploy.fold vs unfolded inference, {r0['model']}, B={r0['batch']}, "
                     f"T={r0['T']}, {r0['size']}x{r0['size']}, eval (median of {r0['reps']}); "
                     f"identical spikes {100 * r0['spike_agreement']:.4f}% (firing rate "
                     f"{100 * r0['firing_rate']:.1f}%), max |logit diff| {r0['max_dlogit']:.2e}{where}")
        table(["graph", "ms", "CPU ms"],
              [[r["name"], _fmt(r["time_ms"], 2), _fmt(r.get("cpu_ms"), 2)] for r in fo])


def plot(results: dict, path: str) -> None:
    """One PNG with the LIF, training-step and scaling panels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [s for s in ("lif", "train", "scaling") if results.get(s)]
    n = len(panels) + (1 if results.get("scaling") else 0)
    ncols = 2 if n == 4 else max(n, 1)
    nrows = 2 if n == 4 else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.0 * ncols, 4.2 * nrows), squeeze=False)
    axes = [a for row in axes for a in row]
    colors = {"svf": "#1f77b4", "svf_torch": "#9ecae1", "svf_compact": "#2ca02c", "sj": "#ff7f0e"}

    def bars(ax, rows, title):
        names = [r["name"] for r in rows]
        t = [r["time_ms"] for r in rows]
        m = [r["peak_mb"] for r in rows]
        xs = range(len(rows))
        ax.bar([i - 0.2 for i in xs], t, 0.4, color=[colors.get(n, "#888") for n in names],
               label="time (ms)")
        ax2 = ax.twinx()
        ax2.bar([i + 0.2 for i in xs], m, 0.4, color=[colors.get(n, "#888") for n in names],
                alpha=0.45, hatch="//", label="peak memory (MB)")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([{"svf": "ours", "svf_torch": "ours\n(torch)", "sj": "SpikingJelly",
                             "svf_compact": "ours +\ncompact"}.get(n, n) for n in names])
        ax.set_ylabel("time (ms), solid")
        ax2.set_ylabel("peak memory (MB), hatched")
        ax.set_title(title, fontsize=10)

    i = 0
    if results.get("lif"):
        bars(axes[i], results["lif"], "LIF forward+backward")
        i += 1
    if results.get("train"):
        r0 = results["train"][0]
        bars(axes[i], results["train"], f"train step {r0['model']} B{r0['batch']} T{r0['T']}")
        i += 1
    sc = results.get("scaling", [])
    if sc:
        names = list(dict.fromkeys(r["name"] for r in sc))
        for key, ax, ylabel in (("time_ms", axes[i], "forward latency (ms)"),
                                ("peak_mb", axes[i + 1], "peak memory (MB)")):
            for k in names:
                rr = sorted((r for r in sc if r["name"] == k), key=lambda r: r["T"])
                ax.plot([r["T"] for r in rr], [r[key] for r in rr], marker="o",
                        label=VARIANT_TITLES.get(k, k), linestyle="--" if k == "ann" else "-")
            ts = sorted({r["T"] for r in sc})
            ref = sorted((r for r in sc if r["name"] == names[0]), key=lambda r: r["T"])
            if key == "time_ms" and ref:  # slope-1 guide through the first design's first point
                ax.plot(ts, [ref[0][key] * t / ts[0] for t in ts], color="gray", linestyle=":",
                        linewidth=1, label="∝ T (linear)")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(ts)
            ax.set_xticklabels([str(t) for t in ts])
            ax.set_xlabel("frames T")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{ylabel} vs T ({sc[0]['model']}, {sc[0]['size']}px)", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
        axes[i].legend(fontsize=7)
    info = results.get("machine", {})
    fig.suptitle(f"svf bench — {info.get('gpu') or info.get('cpu', '')}, "
                 f"torch threads: {info.get('torch_threads', '')}, torch {info.get('torch', '')}",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
