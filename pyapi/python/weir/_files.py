"""File sources and the transactional file sink: the Rust connectors of ``weir_operators::file``
(reading in blocks on a thread, byte-level line cutting and CSV splitting, replayable by byte
offset, part files committed by rename), with one conversion stage to Python objects."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Optional, Sequence, Union

from . import _native
from ._validate import seconds, size

PathLike = Union[str, "os.PathLike[str]"]


def _path(name: str, path: PathLike) -> str:
    p = os.fspath(path)
    if not isinstance(p, str):
        raise TypeError(f"{name}: the path must be a str or os.PathLike[str], got {type(p).__name__}")
    return p


def _opt_size(op: str, arg: str, v: Optional[int]) -> Optional[int]:
    return None if v is None else size(op, arg, v)


def _opt_seconds(op: str, arg: str, v: Optional[float]) -> Optional[float]:
    return None if v is None else seconds(op, arg, v)


def _share(op: str, share: Any) -> Optional[tuple]:
    """``share`` checked: ``None`` or ``(index, count)`` with ``0 <= index < count``."""
    if share is None:
        return None
    ok = (
        isinstance(share, tuple)
        and len(share) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in share)
        and 0 <= share[0] < share[1]
    )
    if not ok:
        raise ValueError(f"{op}: share must be (index, count) with 0 <= index < count, got {share!r}")
    return (share[0], share[1])


def supervisable(make: Callable[[Any], Any]) -> Any:
    """The source ``make(None)`` builds, whose ``with_supervision`` rebuilds it with the
    supervision on the Rust file source stage (the one bad lines fail), not on the conversion
    stage after it."""
    from ._dsl import Source

    def build(sup: Any) -> Any:
        out = Source(make(sup))
        out._resup = build
        return out

    return build(None)


def lines(
    path: PathLike,
    block_size: Optional[int],
    max_line: Optional[int],
    follow: Optional[float] = None,
    share: Any = None,
) -> Callable[[Any], Any]:
    p = _path("from_lines", path)
    b = _opt_size("from_lines", "block_size", block_size)
    m = _opt_size("from_lines", "max_line", max_line)
    f = _opt_seconds("from_lines", "follow", follow)
    s = _share("from_lines", share)
    return lambda sup: _native.source_file_lines(p, b, m, sup, f, s)


def json_lines(
    path: PathLike,
    raw: bool,
    block_size: Optional[int],
    max_line: Optional[int],
    follow: Optional[float] = None,
    share: Any = None,
) -> Callable[[Any], Any]:
    p = _path("from_json_lines", path)
    b = _opt_size("from_json_lines", "block_size", block_size)
    m = _opt_size("from_json_lines", "max_line", max_line)
    f = _opt_seconds("from_json_lines", "follow", follow)
    s = _share("from_json_lines", share)
    loads = None if raw else json.loads
    return lambda sup: _native.source_file_json_lines(p, loads, b, m, sup, f, s)


def csv(
    path: PathLike,
    delimiter: str,
    header: bool,
    decode: Union[None, Sequence[type], Callable[[tuple], Any]],
    block_size: Optional[int],
    max_line: Optional[int],
    follow: Optional[float] = None,
    share: Any = None,
) -> Callable[[Any], Any]:
    if not isinstance(delimiter, str) or len(delimiter) != 1 or not delimiter.isascii():
        raise ValueError(f"from_csv: delimiter must be one ASCII character, got {delimiter!r}")
    p = _path("from_csv", path)
    b = _opt_size("from_csv", "block_size", block_size)
    m = _opt_size("from_csv", "max_line", max_line)
    f = _opt_seconds("from_csv", "follow", follow)
    s = _share("from_csv", share)
    # Checked now (a bad decode is a TypeError at construction, not at run time).
    _native.source_file_csv(p, delimiter, bool(header), decode, b, m)
    return lambda sup: _native.source_file_csv(p, delimiter, bool(header), decode, b, m, sup, f, s)


def files_sink(
    directory: PathLike,
    encode: Optional[Callable[[Any], Any]],
    max_part_bytes: Optional[int],
    prefix: str,
    suffix: str,
    max_part_age: Optional[float] = None,
) -> Any:
    """The sink; its ``with_supervision`` applies to the ``to_files`` stage calling ``encode``."""
    from ._dsl import Sink

    d = _path("to_files", directory)
    m = _opt_size("to_files", "max_part_bytes", max_part_bytes)
    a = _opt_seconds("to_files", "max_part_age", max_part_age)
    enc = None if encode is str else encode  # the same, without a call per str element

    def build(sup: Any) -> Any:
        out = Sink(_native.sink_files(d, enc, m, prefix, suffix, sup, a))
        out._resup = build
        return out

    return build(None)


_COLUMNAR = {"parquet": "from_parquet", "arrow_ipc": "from_arrow_ipc"}


def columnar(
    fmt: str,
    path: PathLike,
    columns: Optional[Sequence[str]],
    batch_rows: Optional[int],
    follow: Optional[float],
    share: Any,
    rows: bool,
) -> Any:
    """A Parquet or Arrow IPC file source: record batches (``pyarrow.RecordBatch`` when pyarrow
    is installed, else ``weir.ArrowBatch``), or dict rows with ``rows``."""
    from ._dsl import Source
    from .columnar import _pa_opt

    op = _COLUMNAR[fmt]
    p = _path(op, path)
    r = _opt_size(op, "batch_rows", batch_rows)
    f = _opt_seconds(op, "follow", follow)
    s = _share(op, share)
    cols = None
    if columns is not None:
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise TypeError(f"{op}: columns must be a sequence of str, got {columns!r}")
        cols = list(columns)
    pa = _pa_opt()
    convert = None if pa is None else pa.record_batch
    out = Source(_native.source_file_columnar(p, fmt, r, cols, convert, f, s))
    return out.rows() if rows else out


def columnar_sink(
    fmt: str,
    directory: PathLike,
    compression: str,
    row_group_rows: Optional[int],
    max_part_bytes: Optional[int],
    prefix: str,
    suffix: str,
    max_part_age: Optional[float],
) -> Any:
    """A Parquet or Arrow IPC part sink; its ``with_supervision`` applies to the conversion
    stage (an element that is not Arrow data)."""
    from ._dsl import Sink

    op = "to_parquet" if fmt == "parquet" else "to_arrow_ipc"
    if compression not in ("snappy", "none"):
        raise ValueError(f"{op}: compression must be 'snappy' or 'none', got {compression!r}")
    d = _path(op, directory)
    g = _opt_size(op, "row_group_rows", row_group_rows)
    m = _opt_size(op, "max_part_bytes", max_part_bytes)
    a = _opt_seconds(op, "max_part_age", max_part_age)

    def build(sup: Any) -> Any:
        out = Sink(_native.sink_file_columnar(d, fmt, compression, g, m, prefix, suffix, a, sup))
        out._resup = build
        return out

    return build(None)
