"""Atomic file writing: the library's one writer core.

:func:`atomic_path` yields a temporary file in the target's folder; when the block finishes
it is fsynced, given the usual permissions and ``os.replace``-d over the target, and the
folder is fsynced.  A reader never sees a half-written file, and an interrupted or failed
write leaves the previous file intact (STYLE: nothing a user wrote is lost).  Every file the
library writes goes through it, directly or through the thin writers below.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

__all__ = ["atomic_path", "fsync_dir", "write_bytes", "write_text", "write_json", "write_csv",
           "save_figure"]


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (renames) to disk; best effort (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    ``suffix`` defaults to the target's suffix (so libraries that infer formats from the file
    name keep working). Missing parent folders are created. On error the temporary file is
    removed and the target is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix,
                               dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)  # mkstemp makes 0600 files: give the usual 0666 & ~umask
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(path.parent)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (non-JSON numbers via ``float``)."""
    return write_text(path, json.dumps(obj, indent=2, default=float) + "\n")


def save_figure(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """``fig.savefig`` to ``path`` atomically (the format follows the file suffix)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    return Path(path)


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]],
              float_format: str | None = None) -> Path:
    """Write dict rows as CSV atomically; the header is the union of keys in first-seen order
    (missing cells empty). ``float_format`` (e.g. ``".6g"``) formats float cells."""
    rows = list(rows)
    keys: list[str] = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for r in rows:
        w.writerow({k: (format(v, float_format) if float_format and isinstance(v, float) else v)
                    for k, v in r.items()})
    return write_text(path, buf.getvalue())
