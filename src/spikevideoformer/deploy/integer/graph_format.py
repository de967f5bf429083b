"""The integer network on disk: ``graph.json`` (ops, shapes, scales) + ``tensors.npz`` (integers).

Readable with ``json`` and ``numpy`` alone (no torch, no spikevideoformer): a hardware team can
load it in a few lines. Layout (docs/integer.md, "File format")::

    graph.json   {"format": "svf-integer", "version": 1, "input": {...}, "ops": [...],
                  "output": {...}, "weight_bits": 8, "membrane_frac_bits": 4, ...}
    tensors.npz  one integer array per key named in an op's "params"

Each op is ``{"name", "op", "inputs": [tensor names], "output": tensor name, "attrs": {...},
"params": {role: npz key}}``; ops run in list order, each reading tensors written before it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["FORMAT", "VERSION", "GRAPH_FILE", "TENSORS_FILE", "OP_KINDS", "save_graph",
           "load_graph", "validate_graph"]

FORMAT, VERSION = "svf-integer", 1
GRAPH_FILE, TENSORS_FILE = "graph.json", "tensors.npz"
OP_KINDS = ("input", "conv", "lif", "add", "attention", "upsample", "pool", "time_sum")


def validate_graph(graph: dict, tensors: dict) -> None:
    """Raise ``ValueError`` naming the first problem: format/version, unknown op, a tensor read
    before it is written, a missing or non-integer parameter array."""
    if graph.get("format") != FORMAT:
        raise ValueError(f"not an integer SpikeVideoFormer graph: format is {graph.get('format')!r}, "
                         f"expected {FORMAT!r}")
    if graph.get("version") != VERSION:
        raise ValueError(f"graph version {graph.get('version')!r} is not supported (this reader: {VERSION})")
    ops = graph.get("ops")
    if not isinstance(ops, list) or not ops or ops[0].get("op") != "input":
        raise ValueError("graph has no op list starting with an 'input' op")
    written: set[str] = set()
    for op in ops:
        kind, name = op.get("op"), op.get("name")
        if kind not in OP_KINDS:
            raise ValueError(f"op {name!r}: unknown kind {kind!r} (known: {', '.join(OP_KINDS)})")
        for t in op.get("inputs", []):
            if t not in written:
                raise ValueError(f"op {name!r} reads tensor {t!r} before any op writes it")
        for role, key in op.get("params", {}).items():
            arr = tensors.get(key)
            if arr is None:
                raise ValueError(f"op {name!r}: parameter {role!r} ({key!r}) is missing from {TENSORS_FILE}")
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"op {name!r}: parameter {key!r} has dtype {arr.dtype}, expected integers")
        written.add(op["output"])
    out = graph.get("output", {}).get("tensor")
    if out not in written:
        raise ValueError(f"graph output tensor {out!r} is not written by any op")


def save_graph(graph: dict, tensors: dict, out_dir: str | os.PathLike) -> Path:
    """Write ``graph.json`` and ``tensors.npz`` into ``out_dir`` (each file atomically)."""
    from ...atomic import atomic_path, write_text  # the package writer (imports torch's package)

    validate_graph(graph, tensors)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    with atomic_path(out / TENSORS_FILE) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **tensors)
    write_text(out / GRAPH_FILE, json.dumps(graph, indent=1) + "\n")
    return out


def load_graph(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(graph, tensors)`` from a folder written by :func:`save_graph` (validated)."""
    d = Path(path)
    if not d.is_dir():
        raise FileNotFoundError(f"integer network folder not found: {d}")
    gpath, tpath = d / GRAPH_FILE, d / TENSORS_FILE
    for p in (gpath, tpath):
        if not p.is_file():
            raise FileNotFoundError(f"{p} is missing (an integer network folder has {GRAPH_FILE} "
                                    f"and {TENSORS_FILE})")
    try:
        graph = json.loads(gpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{gpath} is not valid JSON: {e}") from None
    try:
        with np.load(tpath, allow_pickle=False) as z:
            tensors = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{tpath} is not a readable .npz of arrays: {e}") from None
    validate_graph(graph, tensors)
    return graph, tensors
