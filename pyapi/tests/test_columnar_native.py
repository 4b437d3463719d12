"""weir's own Arrow batches: pyarrow optional. ``WEIR_ARROW=native`` makes weir import and
export Arrow data through its extension (arrow-rs, the C data interface) even where pyarrow is
installed; one test runs with pyarrow made unimportable."""

import os
import subprocess
import sys
import textwrap

import polars as pl
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pytest

import weir
from weir import Sink, Source


@pytest.fixture(autouse=True)
def native(monkeypatch):
    monkeypatch.setenv("WEIR_ARROW", "native")


def frame(n=3000):
    return pl.DataFrame({"city": ["Oslo", "Lima", "Pune"] * (n // 3), "t": list(range(n))})


def test_from_arrow_emits_weir_batches_and_to_arrow_assembles_them():
    df = frame()
    batches = Source.from_arrow(df).run_with(Sink.collect())
    assert all(isinstance(b, weir.ArrowBatch) for b in batches)
    assert sum(b.num_rows for b in batches) == 3000 and batches[0].column_names == ["city", "t"]
    table = Source.from_arrow(df).run_with(Sink.to_arrow())
    assert isinstance(table, weir.ArrowTable) and table.num_rows == 3000
    assert pl.DataFrame(table).equals(df)
    assert Source.from_arrow(df).run_with(Sink.to_polars()).equals(df)


def test_no_copy_from_producer_to_consumer():
    t = pa.table({"x": list(range(1000)), "y": [float(i) for i in range(1000)]})
    out = Source.from_arrow(t).run_with(Sink.to_arrow())
    back = pa.table(out)  # a consumer reading weir's table through the capsule
    assert back.equals(t)
    src_addr = t.column("x").chunks[0].buffers()[1].address
    assert back.column("x").chunks[0].buffers()[1].address == src_addr


def test_map_batches_on_weir_batches():
    df = frame()
    out = (
        Source.from_arrow(df)
        .map_batches(lambda d: d.with_columns(f=pl.col("t") * 2), batch_format="polars")
        # (polars exports strings as string_view, which pyarrow's filter has no kernel for)
        .map_batches(lambda rb: rb.select(["t", "f"]).filter(pa.compute.greater(rb.column("f"), 5000)), batch_format="pyarrow")
        .run_with(Sink.to_polars())
    )
    assert out.height == 499 and out["f"].min() == 5002
    # dict rows through polars, no pyarrow involved
    rows = Source.from_iter([{"a": 1}, {"a": 2}]).map_batches(lambda d: d.with_columns(b=pl.col("a") + 1), batch_format="polars")
    assert rows.run_with(Sink.collect()) == [{"a": 1, "b": 2}, {"a": 2, "b": 3}]


def test_rows_from_weir_batches():
    df = frame(6)
    assert Source.from_arrow(df).rows().run_with(Sink.collect()) == df.to_dicts()
    assert Source.from_arrow(df, rows=True).run_with(Sink.collect()) == df.to_dicts()


def test_every_run_exports_the_producer_anew():
    src = Source.from_arrow(frame())
    assert src.run_with(Sink.to_arrow()).num_rows == src.run_with(Sink.to_arrow()).num_rows == 3000


def test_errors_name_the_problem():
    with pytest.raises(TypeError, match="not Arrow data"):
        Source.from_arrow(object())
    with pytest.raises(TypeError, match="not a struct array"):
        weir._native.import_batch(pa.array([1, 2, 3]))
    b = Source.from_arrow(frame()).run_with(Sink.collect())[0]
    with pytest.raises(TypeError, match="requested_schema"):
        b.__arrow_c_array__(pa.schema([("t", pa.int64())]).__arrow_c_schema__())
    with pytest.raises(ValueError, match="schema"):
        weir._native.arrow_table([b, pa.record_batch({"other": [1]})])
    with pytest.raises(TypeError, match="install pyarrow"):
        import pickle

        pickle.dumps(b)


def test_polars_pipeline_without_pyarrow(repo_root):
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pyarrow"] = None  # import pyarrow now raises ImportError
        import polars as pl
        import weir

        df = pl.DataFrame({"k": ["a", "b"] * 500, "v": list(range(1000))})
        out = (weir.Source.from_arrow(df)
               .map_batches(lambda d: d.filter(pl.col("v") % 2 == 0), batch_format="polars")
               .run_with(weir.Sink.to_arrow()))
        assert type(out).__name__ == "ArrowTable", type(out)
        print(pl.DataFrame(out).group_by("k").len().sort("k").rows())
        """
    )
    env = dict(os.environ)
    env.pop("WEIR_ARROW", None)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[('a', 500)]"
