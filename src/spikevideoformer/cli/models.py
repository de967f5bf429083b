"""``svf models``: the registry as a table (name, embed_dim, parameters)."""
from __future__ import annotations

import argparse

from ..models import MODEL_SIZES, create_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-classes", type=int, default=1000, help="head size for the count")
    p.add_argument("--attention", default="hamming", choices=["hamming", "dot", "softmax"])
    p.add_argument("--design", default="joint",
                   choices=["joint", "spatial", "factorized", "hierarchical"])
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")


def model_table(num_classes: int = 1000, attention: str = "hamming", design: str = "joint"):
    """Rows ``(name, embed_dim, parameters)`` counted on freshly built models."""
    rows = []
    for name, dims in MODEL_SIZES.items():
        m = create_model(name, num_classes=num_classes, attention=attention, design=design,
                         neuron="relu" if attention == "softmax" else "lif")
        rows.append((name, dims, sum(p.numel() for p in m.parameters())))
    return rows


def run(args: argparse.Namespace) -> int:
    if args.num_classes < 0:
        raise ValueError(f"--num-classes must be >= 0 (0 = no head), got {args.num_classes}")
    rows = model_table(args.num_classes, args.attention, args.design)
    head = f"({args.attention}, {args.design}, num_classes={args.num_classes})"
    if args.markdown:
        print(f"| model | embed_dim | parameters {head} |\n|---|---|---|")
        for n, d, c in rows:
            print(f"| {n} | {d} | {c:,} ({c / 1e6:.1f}M) |")
    else:
        print(f"{'model':<10} {'embed_dim':<22} parameters {head}")
        for n, d, c in rows:
            print(f"{n:<10} {str(d):<22} {c:>11,} ({c / 1e6:.1f}M)")
    return 0
