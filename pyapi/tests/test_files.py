"""File sources and the transactional file sink from Python: ``Source.from_lines``,
``from_csv``, ``from_json_lines`` and ``Sink.to_files`` over the Rust connectors of
``weir_operators::file`` (exact outputs, a directory and a glob, bad lines naming file, line
and byte offset, dead letters under ``resume``, part files and their commit order)."""

import os

import pytest

import weir
from weir import Sink, Source


def write(path, text):
    with open(path, "w", newline="") as f:
        f.write(text)
    return str(path)


def read_parts(paths):
    out = []
    for p in paths:
        with open(p) as f:
            out.append(f.read())
    return out


def test_lines_of_a_file_without_terminators_and_a_last_line_without_newline(tmp_path):
    p = write(tmp_path / "a.txt", "one\r\ntwo\n\nthree")
    assert Source.from_lines(p).run_with(Sink.collect()) == ["one", "two", "", "three"]


def test_lines_stream_across_small_blocks(tmp_path):
    lines = [f"line {i} " + "x" * (i % 7) for i in range(500)]
    p = write(tmp_path / "big.txt", "\n".join(lines) + "\n")
    got = Source.from_lines(p, block_size=16).run_with(Sink.collect(), batch_size=7)
    assert got == lines


def test_a_directory_and_a_glob_read_their_files_in_path_order(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    write(d / "b.txt", "b1\nb2\n")
    write(d / "a.txt", "a1\n")
    write(d / "c.log", "c1\n")
    write(d / ".hidden.txt", "h\n")
    assert Source.from_lines(str(d)).run_with(Sink.collect()) == ["a1", "b1", "b2", "c1"]
    assert Source.from_lines(str(d / "*.txt")).run_with(Sink.collect()) == ["a1", "b1", "b2"]
    assert Source.from_lines(d / "?.log").run_with(Sink.collect()) == ["c1"]


def test_a_bad_line_fails_naming_file_line_and_byte_offset_after_the_lines_before_it(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"ok\nfine\n\xff\xfe\nnever\n")
    seen = []
    with pytest.raises(weir.StageFailed) as e:
        Source.from_lines(str(p)).run_with(Sink.for_each(seen.append))
    assert seen == ["ok", "fine"]
    assert e.value.stage_name == "file_lines"
    msg = str(e.value)
    assert f"{p}:3 (byte offset 8): not UTF-8" in msg


def test_bad_lines_go_to_dead_letters_under_resume_and_nothing_else_is_lost(tmp_path):
    p = write(tmp_path / "n.csv", "a,1\nb,x\nc,3\nd\ne,5\n")
    dead = []
    got = (
        Source.from_csv(p, decode=(str, int))
        .with_supervision([(weir.StageFailed, "resume")], dead_letters=lambda x, e, s: dead.append((x, str(e), s)))
        .run_with(Sink.collect())
    )
    assert got == [("a", 1), ("c", 3), ("e", 5)]
    assert [(x, s) for x, _, s in dead] == [("b,x", "file_csv#0"), ("d", "file_csv#0")]
    assert f"{p}:2 (byte offset 4): field 1 (\"x\") is not a valid i64" in dead[0][1]
    assert f"{p}:4 (byte offset 12): expected 2 fields, got 1" in dead[1][1]


def test_csv_rows_are_tuples_of_str_with_quotes_header_and_delimiter(tmp_path):
    p = write(tmp_path / "q.csv", 'name;note\n"x;y";"say ""hi"""\nz;\n\nw;1\n')
    got = Source.from_csv(p, delimiter=";", header=True).run_with(Sink.collect())
    assert got == [("x;y", 'say "hi"'), ("z", ""), ("w", "1")]


def test_csv_decode_types_convert_in_rust_and_a_callable_maps_the_tuple(tmp_path):
    p = write(tmp_path / "t.csv", "k1,7,0.5,ab\nk2,-3,1e3,c\n")
    typed = Source.from_csv(p, decode=(str, int, float, bytes)).run_with(Sink.collect())
    assert typed == [("k1", 7, 0.5, b"ab"), ("k2", -3, 1000.0, b"c")]
    called = Source.from_csv(p, decode=lambda t: (t[0], len(t))).run_with(Sink.collect())
    assert called == [("k1", 4), ("k2", 4)]


def test_csv_decode_callable_raising_is_a_bad_line(tmp_path):
    p = write(tmp_path / "t.csv", "1\n2\n")

    def dec(t):
        if t[0] == "2":
            raise ValueError("no twos")
        return int(t[0])

    with pytest.raises(weir.StageFailed) as e:
        Source.from_csv(p, decode=dec).run_with(Sink.collect())
    assert f"{p}:2 (byte offset 2): ValueError: no twos" in str(e.value)


def test_csv_bad_arguments_are_rejected_at_construction(tmp_path):
    with pytest.raises(TypeError, match="decode types must be str, bytes, int or float"):
        Source.from_csv(str(tmp_path / "x.csv"), decode=(str, list))
    with pytest.raises(ValueError, match="delimiter must be one ASCII character"):
        Source.from_csv(str(tmp_path / "x.csv"), delimiter=";;")
    with pytest.raises(ValueError, match="block_size must be at least 1"):
        Source.from_lines(str(tmp_path / "x.txt"), block_size=0)


def test_a_missing_file_fails_naming_it(tmp_path):
    p = str(tmp_path / "nope.txt")
    with pytest.raises(weir.StageFailed, match=f"cannot read {p}"):
        Source.from_lines(p).run_with(Sink.collect())


def test_json_lines_decode_with_json_or_stay_raw(tmp_path):
    p = write(tmp_path / "j.jsonl", '{"a": [1, 2.5, null]}\n\n  \n"s"\n3\n')
    assert Source.from_json_lines(p).run_with(Sink.collect()) == [{"a": [1, 2.5, None]}, "s", 3]
    assert Source.from_json_lines(p, raw=True).run_with(Sink.collect()) == ['{"a": [1, 2.5, null]}', '"s"', "3"]


def test_a_json_line_that_is_not_one_value_names_file_line_offset_and_column(tmp_path):
    p = write(tmp_path / "j.jsonl", '{"a": 1}\n{"a": 1} 2\n')
    seen = []
    with pytest.raises(weir.StageFailed) as e:
        Source.from_json_lines(p).run_with(Sink.for_each(seen.append))
    assert seen == [{"a": 1}]
    assert e.value.stage_name == "file_json_lines"
    assert f"{p}:2 (byte offset 9)" in str(e.value)
    assert "column" in str(e.value)


def test_to_files_commits_parts_in_order_rolled_by_size(tmp_path):
    out = tmp_path / "out"
    committed = Source.range(0, 12).run_with(Sink.to_files(str(out), max_part_bytes=10))
    names = [os.path.basename(p) for p in committed]
    assert names == [f"part-{i:020d}" for i in range(3)]
    assert read_parts(committed) == ["0\n1\n2\n3\n4\n", "5\n6\n7\n8\n9\n", "10\n11\n"]
    assert sorted(os.listdir(out)) == names
    # A second run continues the sequence.
    again = Source.from_iter(["x"]).run_with(Sink.to_files(out, prefix="part", suffix=""))
    assert [os.path.basename(p) for p in again] == ["part-00000000000000000003"]


def test_to_files_encode_and_suffix_and_a_round_trip_through_from_lines(tmp_path):
    out = tmp_path / "o"
    rows = [("a", 1), ("b", 2)]
    committed = Source.from_iter(rows).run_with(
        Sink.to_files(out, encode=lambda r: f"{r[0]},{r[1]}".encode(), suffix=".csv")
    )
    assert [os.path.basename(p) for p in committed] == ["part-00000000000000000000.csv"]
    assert Source.from_csv(str(out / "*.csv"), decode=(str, int)).run_with(Sink.collect()) == rows


def test_to_files_encode_returning_no_text_fails_naming_the_element_and_removes_the_parts(tmp_path):
    out = tmp_path / "o"
    with pytest.raises(weir.StageFailed) as e:
        Source.from_iter(["a", 5, "c"]).run_with(Sink.to_files(out, encode=lambda x: x))
    assert e.value.stage_name == "to_files"
    assert "encode must return str or bytes, got int" in str(e.value)
    assert e.value.element == 5
    assert os.listdir(out) == []


def test_to_files_encode_under_resume_drops_only_the_bad_element(tmp_path):
    out = tmp_path / "o"
    dead = []
    sink = Sink.to_files(out, encode=lambda x: x).with_supervision(default="resume", dead_letters=dead)
    committed = Source.from_iter(["a", 5, "c"]).run_with(sink)
    assert read_parts(committed) == ["a\nc\n"]
    assert [d[0] for d in dead] == [5]


def test_an_upstream_failure_commits_nothing(tmp_path):
    out = tmp_path / "o"

    def f(x):
        if x == 3:
            raise ValueError("three")
        return x

    with pytest.raises(weir.StageFailed, match="three"):
        Source.range(0, 5).map(f).run_with(Sink.to_files(out))
    assert os.listdir(out) == []


def _publish(directory, name, text):
    hidden = write(directory / f".{name}", text)
    os.rename(hidden, directory / name)


def test_follow_reads_new_files_as_they_appear_until_downstream_has_enough(tmp_path):
    import threading

    write(tmp_path / "b.txt", "b1\nb2\n")
    # Published while the source waits: a.txt sorts before b.txt and is not read.
    timer = threading.Timer(0.05, lambda: (_publish(tmp_path, "a.txt", "a1\n"), _publish(tmp_path, "c.txt", "c1\nc2\n")))
    timer.start()
    try:
        got = Source.from_lines(str(tmp_path / "*.txt"), follow=0.005).take(3).run_with(Sink.collect())
    finally:
        timer.join()
    assert got == ["b1", "b2", "c1"]


def test_follow_and_max_part_age_reject_bad_durations_and_a_single_file(tmp_path):
    with pytest.raises(ValueError, match="from_lines: follow must be positive, got 0s"):
        Source.from_lines(str(tmp_path), follow=0)
    with pytest.raises(ValueError, match="to_files: max_part_age must be positive, got -1s"):
        Sink.to_files(str(tmp_path), max_part_age=-1)
    one = write(tmp_path / "one.txt", "x\n")
    with pytest.raises(weir.WeirError, match="cannot follow .*one.txt for new files: it is a file, not a directory"):
        Source.from_csv(one, follow=0.01).run_with(Sink.collect())


def test_to_files_rolls_parts_by_age_on_the_run_clock(tmp_path):
    from weir.testing import VirtualClock, probe_source

    out = tmp_path / "out"
    clock = VirtualClock()
    run = clock.start(probe_source().to(Sink.to_files(str(out), max_part_age=1.0), "both"))
    src, _ = run.materialized
    src.offer("a")
    clock.settle()
    clock.advance_to(0.5)
    src.offer("b")
    clock.settle()
    # Part 0 (opened at 0 s) closes at 1 s while idle; part 1 opens at 1.1 s and closes at 2.1 s.
    clock.advance_to(1.1)
    src.offer("c")
    clock.settle()
    clock.advance_to(2.5)
    src.offer("d")
    clock.settle()
    src.complete()
    _, committed = run.result()
    assert [os.path.basename(p) for p in committed] == [f"part-{i:020d}" for i in range(3)]
    assert read_parts(committed) == ["a\nb\n", "c\n", "d\n"]


def test_shares_of_one_listing_read_every_file_once_between_them(tmp_path):
    for i in range(5):
        write(tmp_path / f"in-{i}.csv", f"{i},a\n{i},b\n")
    got = [Source.from_csv(str(tmp_path), share=(k, 2), decode=(int, str)).run_with(Sink.collect()) for k in range(2)]
    # Share k reads the files at positions i % 2 == k of the path-ordered listing.
    assert got == [
        [(0, "a"), (0, "b"), (2, "a"), (2, "b"), (4, "a"), (4, "b")],
        [(1, "a"), (1, "b"), (3, "a"), (3, "b")],
    ]
    assert Source.from_lines(str(tmp_path), share=(2, 3)).run_with(Sink.collect()) == ["2,a", "2,b"]
    j = tmp_path / "json"
    j.mkdir()
    for i in range(3):
        write(j / f"{i}.jsonl", f'{{"n": {i}}}\n')
    assert Source.from_json_lines(str(j), share=(1, 2)).run_with(Sink.collect()) == [{"n": 1}]
    for bad in [(2, 2), (-1, 2), (0, 0), (1,), "0/2", (True, 2)]:
        with pytest.raises(ValueError, match=r"from_lines: share must be \(index, count\) with 0 <= index < count"):
            Source.from_lines(str(tmp_path), share=bad)
