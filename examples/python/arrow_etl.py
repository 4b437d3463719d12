"""Columnar ETL: Arrow record batches flow through weir without being copied.

A polars DataFrame is streamed as record batches, each batch is transformed with polars, filtered
with pyarrow compute, and the result is assembled into one Arrow table (whose buffers are the
transformed batches' own).

Run: python examples/python/arrow_etl.py
"""

import polars as pl
import pyarrow.compute as pc

import weir


def main() -> None:
    df = pl.DataFrame({"city": ["Oslo", "Lima", "Pune", "Oslo", "Lima"] * 2_000, "temp_c": list(range(10_000))})
    out = (
        weir.Source.from_arrow(df)
        .map_batches(lambda b: b.with_columns(temp_f=pl.col("temp_c") * 9 / 5 + 32), batch_format="polars")
        .map_batches(lambda rb: rb.filter(pc.field("temp_f") > 17_000), batch_format="pyarrow")
        .run_with(weir.Sink.to_arrow())
    )
    summary = pl.DataFrame(out).group_by("city").agg(pl.len().alias("rows"), pl.col("temp_f").max()).sort("city")
    print(f"{out.num_rows} rows above 17000 F")
    for city, rows, hottest in summary.iter_rows():
        print(f"{city}: {rows} rows, max {hottest:.1f} F")


if __name__ == "__main__":
    main()
