"""Arrow / pandas / polars / numpy through the PyCapsule interface."""

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

import weir


def table():
    return pa.table({"a": list(range(10)), "b": [f"s{i}" for i in range(10)]})


def test_from_arrow_table_reader_and_capsule_objects():
    t = table()
    assert weir.Source.from_arrow(t, rows=True).run_with(weir.Sink.collect()) == t.to_pylist()
    assert weir.Source.from_arrow(t.to_reader()).rows().run_with(weir.Sink.collect()) == t.to_pylist()
    assert weir.Source.from_arrow(pl.from_arrow(t), rows=True).run_with(weir.Sink.collect()) == t.to_pylist()
    rb = t.to_batches()[0]
    assert weir.Source.from_arrow(rb, rows=True).run_with(weir.Sink.collect()) == rb.to_pylist()


def test_from_pandas_and_to_arrow_roundtrip():
    df = pd.DataFrame({"x": [1, 2, 3], "y": [0.5, 1.5, 2.5]})
    out = weir.Source.from_pandas(df, rows=True).map(lambda r: {**r, "z": r["x"] * 2}).run_with(weir.Sink.to_arrow())
    assert isinstance(out, pa.Table)
    assert out.column("z").to_pylist() == [2, 4, 6]
    back = weir.Source.from_arrow(out, rows=True).run_with(weir.Sink.to_pandas())
    assert list(back["x"]) == [1, 2, 3]


def test_map_batches_formats():
    src = weir.Source.from_arrow(table(), rows=True)

    def arrow_fn(t):
        assert isinstance(t, pa.Table)
        return t.append_column("c", pa.compute.multiply(t.column("a"), 10))

    def pandas_fn(df):
        assert isinstance(df, pd.DataFrame)
        df["c"] = df["a"] * 10
        return df

    def polars_fn(df):
        assert isinstance(df, pl.DataFrame)
        return df.with_columns((pl.col("a") * 10).alias("c"))

    def numpy_fn(cols):
        assert isinstance(cols["a"], np.ndarray)
        return {"a": cols["a"], "c": cols["a"] * 10}

    for fmt, fn in [("pyarrow", arrow_fn), ("pandas", pandas_fn), ("polars", polars_fn), ("numpy", numpy_fn)]:
        rows = src.map_batches(fn, batch_format=fmt).run_with(weir.Sink.collect())
        assert [r["c"] for r in rows] == [a * 10 for a in range(10)], fmt


def test_to_arrow_of_scalars():
    t = weir.Source.range(4).run_with(weir.Sink.to_arrow())
    assert t.column("value").to_pylist() == [0, 1, 2, 3]
