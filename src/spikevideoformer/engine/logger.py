"""Metric logging (``metrics.jsonl`` + ``metrics.csv`` twin) and learning-curve plots.

:class:`MetricLogger` appends one JSON object per line to ``<out_dir>/metrics.jsonl`` and one
row to ``<out_dir>/metrics.csv``, flushing after every record, so a crashed run keeps all
completed epochs.  When a record brings a new column, the CSV is rewritten (atomically) with
the union of columns; missing cells are empty.  :func:`plot_curves` draws loss / accuracy-like
metrics / learning rate against epoch into a PNG with matplotlib's Agg canvas (no pyplot,
no global backend switch).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from ..atomic import write_bytes as atomic_write_bytes  # also imported from here by engine.config
from ..atomic import write_csv

__all__ = ["MetricLogger", "read_jsonl", "plot_curves", "atomic_write_bytes"]

PathLike = Union[str, os.PathLike]


def read_jsonl(path: PathLike) -> List[Dict[str, Any]]:
    """All records of a JSON-lines file (a torn last line from a crash is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return "" if value is None else value


class MetricLogger:
    """Append-only metric log in ``out_dir`` (``metrics.jsonl`` and ``metrics.csv``).

    Args:
        out_dir: directory (created on first write).
        name: file stem (``metrics`` -> ``metrics.jsonl`` / ``metrics.csv``).
        enabled: ``False`` turns every method into a no-op (non-zero ranks under DDP).
    """

    def __init__(self, out_dir: PathLike, name: str = "metrics", enabled: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.jsonl_path = self.out_dir / f"{name}.jsonl"
        self.csv_path = self.out_dir / f"{name}.csv"
        self.enabled = enabled
        self._columns: Optional[List[str]] = None

    @property
    def records(self) -> List[Dict[str, Any]]:
        """Everything logged so far (read back from the JSONL file)."""
        return read_jsonl(self.jsonl_path)

    def log(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (JSON-able scalars; numpy/torch scalars are converted) to both files."""
        if not self.enabled:
            return
        record = {str(k): self._plain(v) for k, v in record.items()}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.jsonl_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        if self._columns is None:
            self._columns = self._csv_header()
        if self._columns is None or any(k not in self._columns for k in record):
            self._rewrite_csv(self.records)
            return
        with open(self.csv_path, "a", encoding="utf-8", newline="") as f:
            csv.DictWriter(f, fieldnames=self._columns).writerow({k: _cell(v) for k, v in record.items()})
            f.flush()

    def truncate(self, after_epoch: int) -> None:
        """Drop records whose ``epoch`` is greater than ``after_epoch`` (used on resume)."""
        if not self.enabled or not self.jsonl_path.is_file():
            return
        records = self.records
        kept = [r for r in records if not isinstance(r.get("epoch"), (int, float)) or r["epoch"] <= after_epoch]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        atomic_write_bytes(self.jsonl_path, text.encode("utf-8"))
        self._rewrite_csv(kept)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _plain(value: Any) -> Any:
        if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
            return value.item()
        return value

    def _csv_header(self) -> Optional[List[str]]:
        if not self.csv_path.is_file():
            return None
        with open(self.csv_path, encoding="utf-8", newline="") as f:
            return next(csv.reader(f), None)

    def _rewrite_csv(self, records: Iterable[Mapping[str, Any]]) -> None:
        records = list(records)
        write_csv(self.csv_path, [{k: _cell(v) for k, v in r.items()} for r in records])
        self._columns = list(dict.fromkeys(k for r in records for k in r))


def _series(records: List[Dict[str, Any]], key: str):
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and "epoch" in r:
            xs.append(r["epoch"])
            ys.append(v)
    return xs, ys


def plot_curves(jsonl_path: PathLike, png_path: Optional[PathLike] = None) -> Optional[Path]:
    """Plot loss, accuracy-like metrics and LR against epoch; returns the PNG path.

    Panels: every key containing ``loss``; every other ``train_*``/``val_*`` metric (accuracy,
    mIoU, MPJPE, ...); ``lr``.  ``png_path`` defaults to ``curves.png`` next to the JSONL file.
    Returns ``None`` (and writes nothing) if the log has no epoch records.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    jsonl_path = Path(jsonl_path)
    png_path = Path(png_path) if png_path is not None else jsonl_path.with_name("curves.png")
    records = [r for r in read_jsonl(jsonl_path) if "epoch" in r]
    if not records:
        return None
    keys: List[str] = []
    for r in records:
        keys += [k for k in r if k not in keys]
    numeric = [k for k in keys if _series(records, k)[1]]
    losses = [k for k in numeric if "loss" in k]
    metrics = [k for k in numeric if k not in losses and k.startswith(("train_", "val_"))]
    panels = [("loss", losses), ("metrics", metrics), ("learning rate", ["lr"] if "lr" in numeric else [])]
    panels = [p for p in panels if p[1]]
    fig = Figure(figsize=(5 * len(panels), 4), dpi=100)
    FigureCanvasAgg(fig)
    for i, (title, ks) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for k in ks:
            xs, ys = _series(records, k)
            ax.plot(xs, ys, label=k)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if title == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        else:
            ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.13, top=0.9, wspace=0.25)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(png_path, buf.getvalue())
