"""Columnar data: Arrow, pandas, polars and numpy batches.

Two shapes travel through weir. **Record batches** (``pyarrow.RecordBatch`` elements, from
``Source.from_arrow``/``from_pandas``/``from_polars``) are first-class: the engine moves the
Python object (a reference), never the data, so a batch reaches ``Sink.to_arrow`` with the very
buffers it was created with. ``map_batches(fn, batch_format=...)`` converts each record batch
once: ``pyarrow`` passes it as is, ``polars`` uses ``pl.from_arrow`` (zero-copy), ``numpy``
uses ``to_numpy(zero_copy_only=False)`` (zero-copy for primitive columns without nulls),
``pandas`` uses ``to_pandas()`` (usually a copy). **Dict rows** (the default for
``from_iter``, or ``.rows()`` / ``rows=True``) keep the original row path: columnar stages convert
a whole engine batch of rows at once.
Any producer of the Arrow PyCapsule interface (``__arrow_c_stream__`` / ``__arrow_c_array__``:
pyarrow, polars, pandas >= 2.2, DuckDB...) feeds ``Source.from_arrow``, read batch by batch (a
stream is never loaded whole). With pyarrow installed the batches are ``pyarrow.RecordBatch``
objects (imported through pyarrow, with its whole API at hand). Without it (or with
``WEIR_ARROW=native``) they are ``weir.ArrowBatch`` objects imported by the extension itself
through the C data interface (arrow-rs), still zero-copy, which every PyCapsule consumer takes as
they are (``polars.DataFrame(b)``), and ``Sink.to_arrow()`` returns a ``weir.ArrowTable``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, List, Optional

from . import _native


def _pa_opt() -> Any:
    """pyarrow, or ``None`` when it is not installed (``WEIR_ARROW=native`` also says ``None``:
    weir's own Arrow batches, for minimal installs and their tests)."""
    if os.environ.get("WEIR_ARROW") == "native":
        return None
    try:
        import pyarrow as pa
    except ImportError:
        return None
    return pa


def _is_batch(x: Any) -> bool:
    """Whether ``x`` is a record batch element (pyarrow's or weir's own)."""
    if isinstance(x, _native.ArrowBatch):
        return True
    pa = _pa_opt()
    return pa is not None and isinstance(x, pa.RecordBatch)


def _pl() -> Any:
    try:
        import polars as pl
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("this needs pyarrow or polars: pip install 'weir[arrow]' or 'weir[polars]'") from e
    return pl


def _pa() -> Any:
    try:
        import pyarrow as pa
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("columnar stages need pyarrow: pip install 'weir[arrow]'") from e
    return pa


def _reader(data: Any) -> Any:
    pa = _pa()
    if isinstance(data, pa.Table):
        return data.to_reader()
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatchReader.from_batches(data.schema, [data])
    if isinstance(data, pa.RecordBatchReader):
        return data
    if hasattr(data, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(data)
    if hasattr(data, "__arrow_c_array__"):
        rb = pa.record_batch(data)
        return pa.RecordBatchReader.from_batches(rb.schema, [rb])
    raise TypeError(f"{type(data).__name__} is not Arrow data (no __arrow_c_stream__ / __arrow_c_array__)")


class _ArrowSource:
    """Arrow data read batch by batch, never materialized as a whole: a table (or a record
    batch) is re-readable; an object exporting ``__arrow_c_stream__`` (a polars DataFrame, a
    dataset...) is exported anew for every run; a ``RecordBatchReader`` streams once, and a
    second run fails with a clear error instead of silently seeing nothing."""

    def __init__(self, data: Any) -> None:
        pa = _pa_opt()
        self.once = False
        self.read = False
        if pa is None:
            # weir's own import: every run exports the producer anew.
            if not hasattr(data, "__arrow_c_stream__") and not hasattr(data, "__arrow_c_array__"):
                raise TypeError(f"{type(data).__name__} is not Arrow data (no __arrow_c_stream__ / __arrow_c_array__)")
            self.data = data
            return
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        elif not isinstance(data, (pa.Table, pa.RecordBatchReader)) and not hasattr(data, "__arrow_c_stream__"):
            if not hasattr(data, "__arrow_c_array__"):
                raise TypeError(f"{type(data).__name__} is not Arrow data (no __arrow_c_stream__ / __arrow_c_array__)")
            data = pa.Table.from_batches([pa.record_batch(data)])
        self.data = data
        self.once = isinstance(data, pa.RecordBatchReader)

    def batches(self) -> Iterator[Any]:
        pa = _pa_opt()
        if pa is None:
            return iter(_native.arrow_stream(self.data))
        if isinstance(self.data, pa.Table):
            return iter(self.data.to_batches())
        if self.once:
            if self.read:
                raise RuntimeError(
                    "this RecordBatchReader was already read (a reader streams once): pass a Table, "
                    "or the object the reader came from, to run the graph again"
                )
            self.read = True
            return iter(self.data)
        return iter(pa.RecordBatchReader.from_stream(self.data))

    def __length_hint__(self) -> int:
        pa = _pa_opt()
        return self.data.num_rows if pa is not None and isinstance(self.data, pa.Table) else 0


class ArrowBatches(_ArrowSource):
    """A source iterable over the record batches of Arrow data (no copy)."""

    def __iter__(self) -> Iterator[Any]:
        return self.batches()


def to_rows(batch: Any) -> List[Any]:
    """The rows (dicts) of a record batch, table or Arrow-exporting object."""
    pa = _pa_opt()
    if pa is None:
        return _pl().DataFrame(batch).to_dicts()
    if isinstance(batch, (pa.RecordBatch, pa.Table)):
        return batch.to_pylist()
    return _reader(batch).read_all().to_pylist()


class ArrowRows(_ArrowSource):
    """A source iterable over the rows (dicts) of Arrow data, one record batch at a time."""

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches():
            yield from to_rows(batch)


def pandas_to_arrow(df: Any) -> Any:
    """A pandas DataFrame as a pyarrow Table (index dropped)."""
    return _pa().Table.from_pandas(df, preserve_index=False)


def rows_to_table(rows: List[Any]) -> Any:
    """A list of record batches / tables (assembled without copying), or of dict rows (or
    scalars, as a ``value`` column), as a pyarrow Table (a ``weir.ArrowTable`` of weir's own
    batches when pyarrow is not installed)."""
    pa = _pa_opt()
    if rows and isinstance(rows[0], _native.ArrowBatch):
        table = _native.arrow_table(rows)
        return table if pa is None else pa.table(table)
    pa = _pa()
    if rows and isinstance(rows[0], (pa.RecordBatch, pa.Table)):
        batches: List[Any] = []
        for b in rows:
            if isinstance(b, pa.Table):
                batches.extend(b.to_batches())
            elif isinstance(b, pa.RecordBatch):
                batches.append(b)
            else:
                raise TypeError(f"to_arrow() got a {type(b).__name__} among record batches")
        return pa.Table.from_batches(batches)
    if rows and not isinstance(rows[0], dict):
        return pa.table({"value": rows})
    return pa.Table.from_pylist(rows)


def rows_to_polars(rows: List[Any]) -> Any:
    """A list of record batches (assembled without copying) or of dict rows as a polars
    DataFrame."""
    pl = _pl()
    if rows and _is_batch(rows[0]):
        return pl.DataFrame(rows_to_table(rows))
    return pl.DataFrame(rows)


def rows_to_pandas(rows: List[Any]) -> Any:
    """A list of rows as a pandas DataFrame."""
    return rows_to_table(rows).to_pandas()


def _to_format(rows: List[Any], fmt: str) -> Any:
    if fmt == "polars" and _pa_opt() is None:
        return _pl().DataFrame(rows)
    pa = _pa()
    table = rows_to_table(rows)
    if fmt == "pyarrow":
        return table
    if fmt == "pandas":
        return table.to_pandas()
    if fmt == "polars":
        import polars as pl

        return pl.from_arrow(table)
    if fmt == "numpy":
        return {name: table.column(name).to_numpy() for name in table.column_names}
    raise ValueError(f"unknown batch_format {fmt!r} (pyarrow, pandas, polars, numpy)")


def _from_format(out: Any) -> List[Any]:
    if out is None:
        return []
    if isinstance(out, list):
        return out
    if _pa_opt() is None and type(out).__module__.split(".")[0] == "polars":
        return out.to_dicts()
    pa = _pa()
    if isinstance(out, (pa.Table, pa.RecordBatch)):
        return out.to_pylist()
    mod = type(out).__module__.split(".")[0]
    if mod == "pandas":
        return pa.Table.from_pandas(out, preserve_index=False).to_pylist()
    if hasattr(out, "__arrow_c_stream__") or hasattr(out, "__arrow_c_array__"):
        return _reader(out).read_all().to_pylist()
    if isinstance(out, dict):
        return pa.table({k: list(v) if mod == "numpy" else v for k, v in out.items()}).to_pylist()
    if mod == "numpy":
        return out.tolist()
    return list(out)


def _batch_to_format(rb: Any, fmt: str) -> Any:
    if isinstance(rb, _native.ArrowBatch):
        if fmt == "polars":
            return _pl().DataFrame(rb)
        rb = _pa().record_batch(rb)
    if fmt == "pyarrow":
        return rb
    if fmt == "polars":
        import polars as pl

        return pl.from_arrow(rb)
    if fmt == "pandas":
        return rb.to_pandas()
    if fmt == "numpy":
        return {name: col.to_numpy(zero_copy_only=False) for name, col in zip(rb.schema.names, rb.columns)}
    raise ValueError(f"unknown batch_format {fmt!r} (pyarrow, pandas, polars, numpy)")


def _to_batches(out: Any) -> List[Any]:
    """``fn``'s result on a record batch, back as record batches (no copy where possible)."""
    if out is None:
        return []
    pa = _pa_opt()
    if pa is None:
        if isinstance(out, dict):
            out = _pl().DataFrame(out)
        if hasattr(out, "__arrow_c_stream__") or hasattr(out, "__arrow_c_array__"):
            return list(_native.arrow_stream(out))
        raise TypeError(f"map_batches() on record batches must return Arrow or polars data or a dict of columns, not {type(out).__name__}")
    if isinstance(out, pa.RecordBatch):
        return [out]
    if isinstance(out, pa.Table):
        return out.to_batches()
    mod = type(out).__module__.split(".")[0]
    if mod == "pandas":
        return [pa.RecordBatch.from_pandas(out, preserve_index=False)]
    if mod == "polars" and hasattr(out, "to_arrow"):
        return out.to_arrow().to_batches()
    if hasattr(out, "__arrow_c_array__"):
        return [pa.record_batch(out)]
    if hasattr(out, "__arrow_c_stream__"):
        return _reader(out).read_all().to_batches()
    if isinstance(out, dict):
        return [pa.RecordBatch.from_pydict(dict(out))]
    raise TypeError(f"map_batches() on record batches must return Arrow, pandas, polars or a dict of columns, not {type(out).__name__}")


class _Adapter:
    """Converts an engine batch to ``fmt``, calls ``fn``, converts the result back: per record
    batch when the elements are ``pyarrow.RecordBatch``es (the result stays columnar), else
    for the whole batch of rows (the result becomes rows)."""

    def __init__(self, fn: Callable[[Any], Any], fmt: str) -> None:
        self.fn = fn
        self.fmt = fmt

    def __call__(self, rows: List[Any]) -> List[Any]:
        if rows and _is_batch(rows[0]):
            out: List[Any] = []
            for rb in rows:
                out.extend(_to_batches(self.fn(_batch_to_format(rb, self.fmt))))
            return out
        return _from_format(self.fn(_to_format(rows, self.fmt)))


def batch_adapter(fn: Callable[[Any], Any], batch_format: Optional[str]) -> Callable[[List[Any]], Any]:
    """``fn`` itself for plain lists, else an adapter for ``batch_format``."""
    if batch_format is None or batch_format == "list":
        return fn
    if batch_format not in ("pyarrow", "pandas", "polars", "numpy"):
        raise ValueError(f"unknown batch_format {batch_format!r} (pyarrow, pandas, polars, numpy)")
    return _Adapter(fn, batch_format)
