"""Record batches as first-class elements: zero-copy from Arrow producers to ``Sink.to_arrow``."""

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import weir


def big_table(n=10_000, chunk=2_500):
    t = pa.table({"a": pa.array(np.arange(n, dtype=np.int64)), "b": pa.array(np.arange(n) * 0.5)})
    return pa.Table.from_batches(t.to_batches(max_chunksize=chunk))


def addr(table_or_batch, col=0, chunk=0):
    c = table_or_batch.column(col)
    arr = c.chunk(chunk) if isinstance(c, pa.ChunkedArray) else c
    return arr.buffers()[1].address


def test_from_arrow_emits_record_batches_without_copy():
    t = big_table()
    batches = weir.Source.from_arrow(t).run_with(weir.Sink.collect())
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    assert [b.num_rows for b in batches] == [2500] * 4
    assert addr(batches[0]) == addr(t)


def test_to_arrow_is_zero_copy_end_to_end():
    t = big_table()
    out = weir.Source.from_arrow(t).run_with(weir.Sink.to_arrow())
    assert out.equals(t)
    for i in range(t.column(0).num_chunks):
        assert addr(out, 0, i) == addr(t, 0, i)
    # through a pyarrow map_batches that passes columns through, still the same buffers
    out2 = (
        weir.Source.from_arrow(t)
        .map_batches(lambda rb: rb.append_column("c", pc.multiply(rb.column(0), 2)), batch_format="pyarrow")
        .run_with(weir.Sink.to_arrow())
    )
    assert addr(out2) == addr(t)
    assert out2.column("c").to_pylist()[:3] == [0, 2, 4]


def test_polars_roundtrip_is_zero_copy():
    t = big_table()
    df = pl.from_arrow(t)
    out = weir.Source.from_polars(df).map_batches(lambda d: d, batch_format="polars").run_with(weir.Sink.to_arrow())
    assert out.num_rows == t.num_rows
    assert out.column("a").to_pylist() == t.column("a").to_pylist()
    src_addr = addr(df.to_arrow())
    assert addr(out) == src_addr


@pytest.mark.parametrize("fmt", ["pyarrow", "pandas", "polars", "numpy"])
def test_map_batches_formats_on_record_batches(fmt):
    t = big_table(1000, 300)

    def fn(batch):
        if fmt == "pyarrow":
            assert isinstance(batch, pa.RecordBatch)
            return batch.append_column("c", pc.multiply(batch.column("a"), 10))
        if fmt == "pandas":
            assert isinstance(batch, pd.DataFrame)
            return batch.assign(c=batch["a"] * 10)
        if fmt == "polars":
            assert isinstance(batch, pl.DataFrame)
            return batch.with_columns((pl.col("a") * 10).alias("c"))
        assert isinstance(batch["a"], np.ndarray)
        return {"a": batch["a"], "c": batch["a"] * 10}

    out = weir.Source.from_arrow(t).map_batches(fn, batch_format=fmt).run_with(weir.Sink.to_arrow())
    assert out.column("c").to_pylist() == [a * 10 for a in range(1000)]


def test_rows_and_pandas_sources():
    t = big_table(10, 4)
    assert weir.Source.from_arrow(t).rows().run_with(weir.Sink.collect()) == t.to_pylist()
    df = pd.DataFrame({"x": [1, 2, 3]})
    out = weir.Source.from_pandas(df).run_with(weir.Sink.to_pandas())
    assert list(out["x"]) == [1, 2, 3]
    # a table and an exporting object are re-read by every run; a reader streams once
    src = weir.Source.from_arrow(t)
    assert src.run_with(weir.Sink.to_arrow()).num_rows == src.run_with(weir.Sink.to_arrow()).num_rows == 10
    src = weir.Source.from_arrow(pl.from_arrow(t))
    assert src.run_with(weir.Sink.to_arrow()).num_rows == src.run_with(weir.Sink.to_arrow()).num_rows == 10
    src = weir.Source.from_arrow(t.to_reader())
    assert src.run_with(weir.Sink.to_arrow()).num_rows == 10
    with pytest.raises(weir.StageFailed) as ei:
        src.run_with(weir.Sink.to_arrow())
    assert "already read" in str(ei.value.__cause__)


def test_a_reader_streams_without_being_read_whole():
    pulled = []

    def gen():
        for i in range(1000):
            pulled.append(i)
            yield pa.record_batch({"x": [i]})

    reader = pa.RecordBatchReader.from_batches(pa.schema([("x", pa.int64())]), gen())
    first = weir.Source.from_arrow(reader).batch_size(1).take(3).run_with(weir.Sink.collect())
    assert [b.column(0)[0].as_py() for b in first] == [0, 1, 2]
    assert len(pulled) < 100  # take(3) cancelled the source long before the end


def test_errors():
    with pytest.raises(TypeError):
        weir.Source.from_arrow(object())
    t = big_table(10, 5)
    with pytest.raises(weir.StageFailed):
        weir.Source.from_arrow(t).map_batches(lambda rb: 42, batch_format="pyarrow").run_with(weir.Sink.collect())
    with pytest.raises(weir.StageFailed):
        weir.Source.from_iter([t.to_batches()[0], {"a": 1}]).run_with(weir.Sink.to_arrow())
