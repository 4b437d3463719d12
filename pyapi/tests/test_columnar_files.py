"""Parquet and Arrow IPC files from Python: the Rust columnar connectors, read and written
through the real extension module, checked row for row against pyarrow (files pyarrow wrote
read by weir, files weir wrote read by pyarrow), with projection, dict rows, bad input named,
and a cancelled checkpointed job resumed so that every row is written exactly once."""

import glob
import os

import pytest

import weir
from helpers import cancel_after_checkpoints

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
feather = pytest.importorskip("pyarrow.feather")


def table(n, start=0):
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": pa.array([None if i % 5 == 2 else f"n{i}" for i in ids], pa.string()),
            "score": pa.array([i / 4 for i in ids], pa.float64()),
        }
    )


def rows_of(batches):
    return [r for b in batches for r in b.to_pylist()]


def test_parquet_written_by_pyarrow_is_read_exactly_in_batches_of_batch_rows(tmp_path):
    t = table(103)
    # Dictionary-encoded, Snappy-compressed, uneven row groups: what pyarrow writes by default.
    pq.write_table(t.slice(0, 50), tmp_path / "a.parquet", row_group_size=7)
    pq.write_table(t.slice(50), tmp_path / "b.parquet", row_group_size=20)
    got = weir.Source.from_parquet(tmp_path, batch_rows=8).run_with(weir.Sink.collect())
    assert all(isinstance(b, pa.RecordBatch) for b in got)
    assert all(0 < b.num_rows <= 8 for b in got)
    assert rows_of(got) == t.to_pylist()


def test_feather_files_read_with_columns_in_the_order_asked_and_as_rows(tmp_path):
    t = table(40)
    feather.write_feather(t, tmp_path / "t.arrow", chunksize=9)  # lz4-compressed by default
    got = weir.Source.from_arrow_ipc(tmp_path / "t.arrow", columns=["score", "id"]).run_with(weir.Sink.collect())
    assert [b.schema.names for b in got] == [["score", "id"]] * len(got)
    assert rows_of(got) == t.select(["score", "id"]).to_pylist()
    rows = weir.Source.from_arrow_ipc(tmp_path / "t.arrow", rows=True).run_with(weir.Sink.collect())
    assert rows == t.to_pylist()


@pytest.mark.parametrize("fmt", ["parquet", "arrow_ipc"])
def test_what_weir_writes_pyarrow_reads_back_exactly_in_commit_order(tmp_path, fmt):
    t = table(250)
    out = tmp_path / "out"
    sink = (
        weir.Sink.to_parquet(out, max_part_bytes=1, row_group_rows=16)
        if fmt == "parquet"
        else weir.Sink.to_arrow_ipc(out, max_part_bytes=1)
    )
    # A record batch and tables (any Arrow producer) go in; one part per element.
    elements = [t.slice(0, 100).to_batches(max_chunksize=100)[0], t.slice(100, 100), t.slice(200)]
    paths = weir.Source.from_iter(elements).run_with(sink)
    suffix = ".parquet" if fmt == "parquet" else ".arrow"
    assert paths == sorted(glob.glob(str(out / f"part-*{suffix}")))
    assert len(paths) == 3
    read = pq.read_table if fmt == "parquet" else feather.read_table
    back = pa.concat_tables([read(p) for p in paths])
    assert back.to_pylist() == t.to_pylist()
    if fmt == "parquet":
        assert pq.ParquetFile(paths[0]).metadata.num_row_groups == 7  # 100 rows, 16 a group
        assert pq.ParquetFile(paths[0]).metadata.row_group(0).column(0).compression == "SNAPPY"


def test_an_element_that_is_not_arrow_data_fails_the_sink_naming_it_and_resume_skips_it(tmp_path):
    t = table(6)
    with pytest.raises(weir.StageFailed) as e:
        weir.Source.from_iter([t, {"id": 1}]).run_with(weir.Sink.to_parquet(tmp_path / "x"))
    assert "to_parquet" in str(e.value) and "{'id': 1}" in str(e.value)
    assert os.listdir(tmp_path / "x") == []
    dead = []
    sink = weir.Sink.to_parquet(tmp_path / "y").with_supervision(default="resume", dead_letters=lambda x, e, s: dead.append((x, s)))
    paths = weir.Source.from_iter([t.slice(0, 3), "nope", t.slice(3)]).run_with(sink)
    assert pa.concat_tables([pq.read_table(p) for p in paths]).to_pylist() == t.to_pylist()
    assert dead == [("nope", "to_parquet#1")]


def test_bad_files_and_arguments_are_named(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(weir.StageFailed) as e:
        weir.Source.from_parquet(tmp_path / "x.parquet").run_with(weir.Sink.collect())
    assert str(tmp_path / "x.parquet") in str(e.value) and "(Parquet)" in str(e.value)
    pq.write_table(table(3), tmp_path / "ok.parquet")
    with pytest.raises(weir.StageFailed) as e:
        weir.Source.from_parquet(tmp_path / "ok.parquet", columns=["id", "nope"]).run_with(weir.Sink.collect())
    assert 'has no column "nope" (its columns: id, name, score)' in str(e.value)
    with pytest.raises(TypeError):
        weir.Source.from_parquet(tmp_path, columns="id")
    with pytest.raises(ValueError):
        weir.Source.from_parquet(tmp_path, batch_rows=0)
    with pytest.raises(ValueError):
        weir.Sink.to_parquet(tmp_path, compression="zstd")


def test_a_cancelled_checkpointed_job_resumes_and_writes_every_row_exactly_once(tmp_path):
    n = 3000
    pq.write_table(table(n), tmp_path / "in.parquet", row_group_size=100)
    out = tmp_path / "out"

    def graph():
        return (
            weir.Source.from_parquet(tmp_path / "in.parquet", batch_rows=10)
            .throttle(400, 1.0, burst=4)
            .to(weir.Sink.to_parquet(out), "right")
        )

    state = tmp_path / "st"
    cancel_after_checkpoints(graph(), state, 3)
    first = sorted(glob.glob(str(out / "part-*.parquet")))
    assert first, "the first run committed parts"
    again = graph().start(state_dir=state, checkpoint_interval=0.05)
    again.wait()
    assert again.restored_checkpoint is not None and again.restored_checkpoint >= 3
    parts = sorted(glob.glob(str(out / "part-*.parquet")))
    assert parts[: len(first)] == first
    back = pa.concat_tables([pq.read_table(p) for p in parts])
    assert back.to_pylist() == table(n).to_pylist()
