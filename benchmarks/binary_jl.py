"""Binary JL proposition experiment: |Hamming sim - (1 - angle/π)| vs D against the bound.

    python benchmarks/binary_jl.py --out docs/img        # writes binary_jl.csv and binary_jl.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

from spikevideoformer.analysis.binary_jl import jl_experiment
from spikevideoformer.atomic import save_figure, write_csv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/binary_jl")
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    res = jl_experiment(dim=args.dim, trials=args.trials, seed=args.seed)
    rows = res.rows()
    out = Path(args.out)
    write_csv(out / "binary_jl.csv", rows)
    head = list(rows[0])
    print(" ".join(f"{h:>14}" for h in head))
    for r in rows:
        print(" ".join(f"{r[h]:>14.4f}" if isinstance(r[h], float) else f"{r[h]:>14}" for h in head))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.loglog(res.bits, res.mean_error, "o-", label="mean |error|")
    a.loglog(res.bits, res.p95_error, "s-", label="95th percentile")
    a.set_xlabel("D (spike bits)")
    a.set_ylabel("|Hamming sim - (1 - angle/π)|")
    a.legend()
    for d in res.deltas:
        line, = b.semilogx(res.bits, res.success[d], "o-", label=f"empirical, δ={d}")
        b.semilogx(res.bits, [max(0.0, v) for v in res.bound[d]], "--", color=line.get_color(),
                   label=f"bound 1-2exp(-δ²D), δ={d}")
    b.set_xlabel("D (spike bits)")
    b.set_ylabel("P(|error| ≤ δ)")
    b.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "binary_jl.png", dpi=110)
    print(f"wrote {out / 'binary_jl.csv'} and {out / 'binary_jl.png'}")


if __name__ == "__main__":
    main()
