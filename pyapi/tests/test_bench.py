"""The Python benchmarks stay runnable: each small workload runs once and checks its own result
against the plain-Python baseline (a checksum mismatch raises)."""

import json

from weir import bench


def test_w3_and_keyed_workloads_agree_with_their_baselines(capsys):
    bench.w3(30_000, 1)
    bench.keyed(5_000, 1)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by = {(r["workload"], r["variant"]): r for r in lines}
    assert by[("w3", "weir_windows")]["checksum"] == by[("w3", "cpython_loop")]["checksum"]
    assert by[("keyed_sum", "weir_sum_item")]["checksum"] == by[("keyed_sum", "cpython_dict")]["checksum"]
    assert {r["workload"] for r in lines} == {"w3", "keyed_sum", "keyed_count_distinct"}


def test_the_w3_loop_fires_each_window_once_with_its_exact_sum():
    events = [(1, 5, 0), (2, 1, 999), (1, 2, 1000), (1, 3, 950), (2, 4, 1200), (1, 1, 2200)]
    # The watermark passes 999 at ts 1100 (1200 - 101): window 0 fires then, with the late 950.
    assert bench.w3_loop(events) == [(1, 0, 8), (2, 0, 1), (1, 1000, 2), (2, 1000, 4), (1, 2000, 1)]
