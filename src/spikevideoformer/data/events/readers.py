"""Reading and writing event streams (``.npy``, ``.npz``, ``.h5``/``.hdf5``, AEDAT 3.1).

Formats
-------
``.npy``
    One numpy structured array with fields ``x, y, t, p`` (extra fields are ignored).
``.npz``
    Arrays ``x, y, t, p`` and, optionally, ``sensor_size`` (``[H, W]``).
``.h5`` / ``.hdf5``
    Datasets ``events/x, events/y, events/t, events/p`` or top-level ``x, y, t, p``;
    optional ``sensor_size`` as a dataset or as an attribute of the file / ``events`` group.
    Needs ``h5py`` (optional dependency: ``pip install h5py``).
``.aedat``
    AEDAT 3.1 polarity events (read-only), see :func:`read_aedat31`.

Aliases accepted on reading: ``ts``/``timestamp`` for ``t``; ``pol``/``polarity`` for ``p``.
Writing is atomic (:func:`spikevideoformer.atomic.atomic_path`): data go to a temporary file
in the destination directory which is then moved into place, so a crash never leaves a
half-written file.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...atomic import atomic_path
from .representation import EVENT_FIELDS, validate_events

__all__ = ["read_events", "write_events", "read_aedat31", "aedat31_time_span", "AEDAT_POLARITY_EVENT"]

_ALIASES = {"x": ("x",), "y": ("y",), "t": ("t", "ts", "timestamp"), "p": ("p", "pol", "polarity")}
_NPY_EXT = (".npy",)
_NPZ_EXT = (".npz",)
_H5_EXT = (".h5", ".hdf5")
_AEDAT_EXT = (".aedat",)


def _import_h5py():
    try:
        import h5py  # noqa: PLC0415
    except ImportError as e:  # pragma: no cover - exercised via monkeypatch in the tests
        raise ImportError(
            "reading/writing HDF5 event files needs the optional dependency h5py: pip install h5py"
        ) from e
    return h5py


def _ext(path: Path) -> str:
    return path.suffix.lower()


def _pick(path: Path, keys, getter) -> dict[str, np.ndarray]:
    """Look up x, y, t, p (with aliases) among ``keys``; ValueError naming the missing ones."""
    keys = set(keys)
    out, missing = {}, []
    for f in EVENT_FIELDS:
        name = next((a for a in _ALIASES[f] if a in keys), None)
        if name is None:
            missing.append(f)
        else:
            out[f] = getter(name)
    if missing:
        raise ValueError(
            f"{path}: missing event field(s) {missing} (found {sorted(keys)}; "
            f"required: {list(EVENT_FIELDS)})"
        )
    return out


def _check_dtypes(path: Path, fields: dict[str, np.ndarray]) -> None:
    for name, a in fields.items():
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{path}: field '{name}' has non-numeric dtype {a.dtype}")
        if a.ndim != 1:
            raise ValueError(f"{path}: field '{name}' must be 1-D, got shape {a.shape}")


def _sensor_from(path: Path, value) -> tuple[int, int] | None:
    if value is None:
        return None
    v = np.asarray(value).ravel()
    if v.size != 2 or v.dtype.kind not in "iuf":
        raise ValueError(f"{path}: sensor_size must be two numbers (H, W), got {value!r}")
    return int(v[0]), int(v[1])


def _read_npy(path: Path):
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy raises various errors on garbage
        raise ValueError(f"{path}: not a readable .npy file ({e})") from e
    if not isinstance(arr, np.ndarray) or arr.dtype.names is None:
        raise ValueError(
            f"{path}: expected a structured array with fields x, y, t, p, got an array of dtype "
            f"{getattr(arr, 'dtype', type(arr))}"
        )
    fields = _pick(path, arr.dtype.names, lambda k: np.asarray(arr[k]))
    return fields, None


def _read_npz(path: Path):
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: not a readable .npz file ({e})") from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an .npz archive with arrays x, y, t, p")
    try:
        with z:
            keys = list(z.files)
            if "events" in keys and not any(k in keys for k in ("x", "y")):
                arr = z["events"]
                if arr.dtype.names is None:
                    raise ValueError(f"{path}: array 'events' is not a structured array")
                fields = _pick(path, arr.dtype.names, lambda k: np.asarray(arr[k]))
            else:
                fields = _pick(path, keys, lambda k: z[k])
            sensor = _sensor_from(path, z["sensor_size"]) if "sensor_size" in keys else None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"{path}: corrupt .npz archive ({e})") from e
    return fields, sensor


def _read_h5(path: Path):
    h5py = _import_h5py()
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path}: not a readable HDF5 file ({e})") from e
    with f:
        group = f["events"] if "events" in f and isinstance(f["events"], h5py.Group) else f
        keys = [k for k in group.keys() if isinstance(group[k], h5py.Dataset)]
        fields = _pick(path, keys, lambda k: np.asarray(group[k][()]))
        sensor = None
        for src in (group, f):
            if "sensor_size" in src.attrs:
                sensor = _sensor_from(path, src.attrs["sensor_size"])
                break
            if "sensor_size" in src and isinstance(src["sensor_size"], h5py.Dataset):
                sensor = _sensor_from(path, src["sensor_size"][()])
                break
    return fields, sensor


def read_events(
    path: str | os.PathLike,
    sensor_size: Sequence[int] | None = None,
    return_sensor_size: bool = False,
):
    """Read an event stream from ``.npy``, ``.npz``, ``.h5``/``.hdf5`` or ``.aedat`` (3.1).

    Args:
        path: the file.
        sensor_size: optional ``(H, W)`` to validate coordinates against (defaults to the size
            stored in the file, if any).
        return_sensor_size: also return the stored ``(H, W)`` (``None`` when the file has none).

    Returns:
        Canonical structured array (see :func:`validate_events`), or ``(events, sensor_size)``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unknown extension, unreadable/corrupt file, missing field, wrong dtype or an
            invalid stream -- the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"event file not found: {path}")
    ext = _ext(path)
    if ext in _NPY_EXT:
        fields, stored = _read_npy(path)
    elif ext in _NPZ_EXT:
        fields, stored = _read_npz(path)
    elif ext in _H5_EXT:
        fields, stored = _read_h5(path)
    elif ext in _AEDAT_EXT:
        ev = read_aedat31(path)
        stored = None
        fields = {f: ev[f] for f in EVENT_FIELDS}
    else:
        raise ValueError(
            f"{path}: unsupported event file extension '{ext}' (supported: .npy, .npz, .h5, .hdf5, .aedat)"
        )
    _check_dtypes(path, fields)
    check = sensor_size if sensor_size is not None else stored
    try:
        ev = validate_events(fields, sensor_size=check)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    return (ev, stored) if return_sensor_size else ev


def write_events(
    path: str | os.PathLike,
    events: Any,
    sensor_size: Sequence[int] | None = None,
    compress: bool = False,
) -> Path:
    """Write an event stream atomically to ``.npy``, ``.npz`` or ``.h5``/``.hdf5``.

    The stream is validated (and polarity normalised to 0/1) first. ``sensor_size`` is stored
    in ``.npz`` (array ``sensor_size``) and HDF5 (attribute ``sensor_size``); ``.npy`` cannot
    hold it. ``compress`` uses ``np.savez_compressed`` / gzip for HDF5. Returns the path.
    """
    path = Path(path)
    ext = _ext(path)
    if ext not in _NPY_EXT + _NPZ_EXT + _H5_EXT:
        raise ValueError(f"{path}: unsupported extension '{ext}' for writing (use .npy, .npz, .h5 or .hdf5)")
    ev = validate_events(events, sensor_size=sensor_size)
    if ext in _H5_EXT:
        h5py = _import_h5py()
    with atomic_path(path, suffix=".tmp" + ext) as tmp:
        if ext in _H5_EXT:
            kw = {"compression": "gzip"} if compress else {}
            with h5py.File(tmp, "w") as f:
                g = f.create_group("events")
                for name in EVENT_FIELDS:
                    g.create_dataset(name, data=ev[name], **kw)
                if sensor_size is not None:
                    f.attrs["sensor_size"] = np.asarray(sensor_size, dtype=np.int64)
        else:
            with open(tmp, "wb") as fh:
                if ext in _NPY_EXT:
                    np.save(fh, ev, allow_pickle=False)
                else:
                    arrays = {name: np.ascontiguousarray(ev[name]) for name in EVENT_FIELDS}
                    if sensor_size is not None:
                        arrays["sensor_size"] = np.asarray(sensor_size, dtype=np.int64)
                    (np.savez_compressed if compress else np.savez)(fh, **arrays)
    return path


# --------------------------------------------------------------------------------------------
# AEDAT 3.1
# --------------------------------------------------------------------------------------------
#: AEDAT 3.1 event type id of polarity events.
AEDAT_POLARITY_EVENT = 1
_AEDAT_PACKET_HEADER = np.dtype(
    [
        ("eventType", "<i2"),
        ("eventSource", "<i2"),
        ("eventSize", "<i4"),
        ("eventTSOffset", "<i4"),
        ("eventTSOverflow", "<i4"),
        ("eventCapacity", "<i4"),
        ("eventNumber", "<i4"),
        ("eventValid", "<i4"),
    ]
)


def _aedat_body_start(path: Path, buf) -> int:
    """Parse the ASCII header of an AEDAT 3.x buffer; return the offset of the first packet."""
    if len(buf) == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not an AEDAT 3.x file")
    pos, first = 0, True
    while pos < len(buf) and buf[pos:pos + 1] == b"#":
        nl = buf.find(b"\n", pos)
        if nl < 0:
            raise ValueError(f"{path}: unterminated AEDAT header line at byte {pos} (truncated file?)")
        line = buf[pos:nl].strip()
        if first and not line.startswith(b"#!AER-DAT3"):
            raise ValueError(
                f"{path}: not an AEDAT 3.x file (first header line is {line[:40]!r}; expected '#!AER-DAT3.1')"
            )
        first = False
        pos = nl + 1
        if line == b"#!END-HEADER":
            return pos
    if first:
        raise ValueError(f"{path}: not an AEDAT 3.x file (no '#!AER-DAT3' header)")
    raise ValueError(f"{path}: AEDAT header has no '#!END-HEADER' line")


def _aedat_polarity_packets(path: Path, buf):
    """Yield ``(offset, eventNumber, eventSize, eventTSOverflow)`` of each non-empty polarity packet.

    ``buf`` is bytes or an mmap (no view of it is kept).  Raises ValueError naming the file and
    byte offset for a truncated or corrupt packet.
    """
    pos = _aedat_body_start(path, buf)
    hsize = _AEDAT_PACKET_HEADER.itemsize
    while pos < len(buf):
        if pos + hsize > len(buf):
            raise ValueError(f"{path}: truncated AEDAT packet header at byte {pos} (file ends at {len(buf)})")
        h = np.frombuffer(bytes(buf[pos:pos + hsize]), dtype=_AEDAT_PACKET_HEADER)[0]
        size, cap, num = int(h["eventSize"]), int(h["eventCapacity"]), int(h["eventNumber"])
        if size <= 0 or cap < 0 or num < 0 or num > cap:
            raise ValueError(
                f"{path}: corrupt AEDAT packet header at byte {pos} "
                f"(eventSize={size}, eventCapacity={cap}, eventNumber={num})"
            )
        start = pos + hsize
        end = start + cap * size
        if end > len(buf):
            raise ValueError(
                f"{path}: truncated AEDAT packet at byte {pos}: needs {cap * size} bytes, {len(buf) - start} left"
            )
        if int(h["eventType"]) == AEDAT_POLARITY_EVENT and num > 0:
            if size < 8:
                raise ValueError(f"{path}: polarity packet at byte {pos} has eventSize {size} < 8")
            yield start, num, size, int(h["eventTSOverflow"])
        pos = end


def _stamps(raw: np.ndarray, overflow: int) -> np.ndarray:
    """Full timestamps (int64 us) of raw ``[n, eventSize]`` uint8 polarity events."""
    ts = np.ascontiguousarray(raw[:, 4:8]).view("<u4").ravel().astype(np.int64)
    return ts | (np.int64(overflow) << 31)


def aedat31_time_span(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(first, last)`` timestamp (us) of an AEDAT 3.1 file's polarity events, ``None`` if it has none.

    Cheap: the file is memory-mapped and only packet headers and the first and last event of
    each polarity packet are read.  Raises like :func:`read_aedat31` for a truncated file.
    """
    import mmap

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AEDAT file not found: {path}")
    lo = hi = None
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            _aedat_body_start(path, b"")  # raises: empty file
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for start, num, size, overflow in _aedat_polarity_packets(path, buf):
                ends = bytes(buf[start:start + size]) + bytes(buf[start + (num - 1) * size:start + num * size])
                ts = _stamps(np.frombuffer(ends, np.uint8).reshape(2, size), overflow)
                lo = int(ts.min()) if lo is None else min(lo, int(ts.min()))
                hi = int(ts.max()) if hi is None else max(hi, int(ts.max()))
    return None if lo is None else (lo, hi)


def read_aedat31(path: str | os.PathLike, drop_invalid: bool = True) -> np.ndarray:
    """Parse the polarity events of an AEDAT 3.1 file (as shipped with DVS128 Gesture).

    Layout assumed (all little-endian):

    * ASCII header: lines starting with ``#``; the first is ``#!AER-DAT3.x``, the last
      ``#!END-HEADER``.
    * Packets: a 28-byte header ``eventType int16, eventSource int16, eventSize int32,
      eventTSOffset int32, eventTSOverflow int32, eventCapacity int32, eventNumber int32,
      eventValid int32`` followed by ``eventCapacity * eventSize`` bytes of events, of which the
      first ``eventNumber`` are used. Packets of other types are skipped.
    * Polarity event (type 1, ``eventSize`` >= 8): ``uint32 data, uint32 timestamp`` with
      bit 0 = validity mark, bit 1 = polarity (1 = ON), bits 2..14 = y
      (``(data >> 2) & 0x1FFF``), bits 17..29 = x (``(data >> 17) & 0x1FFF``). The full
      timestamp is ``timestamp | eventTSOverflow << 31`` microseconds. DVS128 x and y are 0..127.

    Events with the validity bit cleared are dropped unless ``drop_invalid=False``. If the
    timestamps are not monotonic across packets the stream is stably sorted by time.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AEDAT file not found: {path}")
    buf = path.read_bytes()
    datas, stamps = [], []
    for start, num, size, overflow in _aedat_polarity_packets(path, buf):
        raw = np.frombuffer(buf, dtype=np.uint8, count=num * size, offset=start).reshape(num, size)
        datas.append(np.ascontiguousarray(raw[:, 0:4]).view("<u4").ravel())
        stamps.append(_stamps(raw, overflow))

    data = np.concatenate(datas) if datas else np.zeros(0, np.uint32)
    t = np.concatenate(stamps) if stamps else np.zeros(0, np.int64)
    if drop_invalid:
        keep = (data & 1).astype(bool)
        data, t = data[keep], t[keep]
    if t.size > 1 and np.any(t[1:] < t[:-1]):
        order = np.argsort(t, kind="stable")
        data, t = data[order], t[order]
    fields = {
        "x": ((data >> 17) & 0x1FFF).astype(np.int32),
        "y": ((data >> 2) & 0x1FFF).astype(np.int32),
        "t": t,
        "p": ((data >> 1) & 1).astype(np.int8),
    }
    try:
        return validate_events(fields)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
