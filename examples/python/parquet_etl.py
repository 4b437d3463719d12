"""Parquet ETL: Parquet in, Parquet out, record batches all the way, read and written in Rust.

A Parquet file of readings is read with only the columns the job needs, each batch is
converted with polars, rows below a threshold are dropped with pyarrow compute, and the rest is written as
Snappy-compressed Parquet parts (committed atomically, named in commit order), which pyarrow
then reads back for a summary.

Run: python examples/python/parquet_etl.py [WORK_DIR]
"""

import sys
import tempfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import weir


def main(work: Path) -> None:
    readings = pa.table(
        {
            "city": ["Oslo", "Lima", "Pune", "Oslo", "Lima"] * 2_000,
            "station": list(range(10_000)),
            "temp_c": [float(i) for i in range(10_000)],
        }
    )
    pq.write_table(readings, work / "readings.parquet", row_group_size=1_000)
    parts = (
        weir.Source.from_parquet(work / "readings.parquet", columns=["city", "temp_c"], batch_rows=256)
        .map_batches(lambda b: b.select("city", temp_f=pl.col("temp_c") * 9 / 5 + 32), batch_format="polars")
        .map_batches(lambda rb: rb.filter(pc.field("temp_f") > 17_000), batch_format="pyarrow")
        .run_with(weir.Sink.to_parquet(work / "hot", max_part_bytes=8_192))
    )
    hot = pa.concat_tables([pq.read_table(p) for p in parts])
    print(f"{hot.num_rows} rows above 17000 F in {len(parts)} parts")
    for row in hot.group_by("city").aggregate([("temp_f", "max"), ("temp_f", "count")]).sort_by("city").to_pylist():
        print(f"{row['city']}: {row['temp_f_count']} rows, max {row['temp_f_max']:.1f} F")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as d:
            main(Path(d))
