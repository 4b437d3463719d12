"""Running: run / run_async / start / cancel / Ctrl-C / kill switches / metrics."""

import asyncio
import os
import signal
import threading
import time

import pytest

import weir

from helpers import Counting, Forever, boom_at


def slow(x):
    time.sleep(0.001)
    return x


def test_run_async_and_run_with_async():
    async def main():
        g = weir.Source.range(100).map(lambda x: x + 1).to(weir.Sink.collect(), keep="right")
        a = await g.run_async()
        b = await weir.Source.range(3).run_with_async(weir.Sink.fold(0, lambda s, x: s + x))
        return a, b

    a, b = asyncio.run(main())
    assert a == list(range(1, 101)) and b == 3


def test_blocking_run_inside_running_loop():
    async def main():
        # like a Jupyter cell: a loop is running in this thread, run() still blocks and returns
        return weir.Source.range(10).run_with(weir.Sink.collect())

    assert asyncio.run(main()) == list(range(10))


def test_map_async_runs_on_callers_loop_bounded():
    state = {"now": 0, "max": 0, "loops": set()}

    async def work(x):
        state["loops"].add(id(asyncio.get_running_loop()))
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        await asyncio.sleep(0.001)
        state["now"] -= 1
        return x * 10

    async def main():
        out = await weir.Source.range(200).map_async(work, parallelism=5).run_with_async(weir.Sink.collect())
        return out, id(asyncio.get_running_loop())

    out, loop_id = asyncio.run(main())
    assert out == [x * 10 for x in range(200)]
    assert state["loops"] == {loop_id}
    assert 1 < state["max"] <= 5


def test_map_async_in_blocking_run_and_for_each_async():
    got = []

    async def work(x):
        await asyncio.sleep(0)
        return x + 1

    async def keep(x):
        got.append(x)

    assert weir.Source.range(50).map_async(work, 3).run_with(weir.Sink.collect()) == list(range(1, 51))
    weir.Source.range(20).run_with(weir.Sink.for_each_async(keep, 4))
    assert sorted(got) == list(range(20))


def test_map_async_error_and_resume():
    async def work(x):
        if x == 3:
            raise KeyError(x)
        return x

    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(10).map_async(work, 2).run_with(weir.Sink.collect())
    assert isinstance(info.value.__cause__, KeyError)
    out = weir.Source.range(6).map_async(work, 2, supervision=[(KeyError, "resume")]).run_with(weir.Sink.collect())
    assert out == [0, 1, 2, 4, 5]


def test_start_wait_metrics():
    h = weir.Source.range(1000).map(lambda x: x).named("ident").to(weir.Sink.collect(), keep="right").start()
    assert h.wait(timeout=30) == list(range(1000))
    assert h.done()
    counts = h.stage_counts()
    assert any(p.startswith("from_iter") for p in counts)
    assert "<table>" in h._repr_html_()


def test_metrics_count_elements_of_python_stages():
    g = (
        weir.Source.range(1000)
        .map(lambda x: x)
        .async_boundary()
        .filter(lambda x: x % 2 == 0)
        .named("evens")
        .to(weir.Sink.collect(), keep="right")
    )
    h = g.start()
    assert len(h.wait(timeout=30)) == 500
    counts = h.stage_counts()
    (src,) = [c for p, c in counts.items() if p.startswith("from_iter")]
    (evens,) = [c for p, c in counts.items() if p.startswith("evens")]
    (sink,) = [c for p, c in counts.items() if p.startswith("collect")]
    assert src["out"] == 1000
    assert (evens["in"], evens["out"]) == (1000, 500)
    assert sink["in"] == 500


def test_stage_stats_rates_and_watch(capsys):
    g = weir.Source.range(20_000).map(lambda x: x).named("ident").async_boundary().to(weir.Sink.ignore(), keep="right")
    h = g.start()
    h.watch(interval=0.05)  # no IPython here: text lines until the run is over
    h.wait(timeout=30)
    printed = capsys.readouterr().out
    assert "weir run (done" in printed and "ident#" in printed
    stats = h.stage_stats()
    (ident,) = [c for p, c in stats.items() if "ident#" in p]
    assert ident["out"] == 20_000
    assert ident["rate"] == pytest.approx(20_000 / h.elapsed())
    again = h.stage_stats()  # a finished run adds nothing since the previous call
    assert all(c["recent_rate"] == 0 for c in again.values())
    html = h._repr_html_()
    assert "out rate" in html and "ident#" in html


def test_slow_python_sink_bounds_what_the_source_pulls():
    source = Counting()
    seen = []

    def slow(x):
        time.sleep(0.0005)
        seen.append(x)

    g = weir.Source.from_iter(source).map(lambda x: x).async_boundary().to(weir.Sink.for_each(slow), keep="right")
    h = g.start(batch_size=16)
    gaps = []
    for _ in range(3):
        time.sleep(0.4)
        gaps.append(source.pulled - len(seen))
    h.cancel()
    with pytest.raises(weir.RunCancelled):
        h.wait(timeout=30)
    # Backpressure: the source stays a few batches and channel credits ahead of the slow sink,
    # and the lead does not grow with time.
    assert len(seen) > 100
    assert max(gaps) < 1000, gaps
    assert gaps[-1] <= gaps[0] + 200, gaps


def test_cancel_stops_run():
    h = weir.Source.from_iter(Forever()).map(slow).to(weir.Sink.ignore(), keep="right").start()
    time.sleep(0.2)
    h.cancel()
    with pytest.raises(weir.RunCancelled):
        h.wait(timeout=30)


def test_cancel_awaiting_task_cancels_run():
    async def main():
        g = weir.Source.from_iter(Forever()).map(slow).to(weir.Sink.ignore(), keep="right")
        t = asyncio.ensure_future(g.run_async())
        await asyncio.sleep(0.2)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    asyncio.run(main())


def test_kill_switch_shutdown_completes():
    g = weir.Source.from_iter(Forever()).map(slow).kill_switch().to(weir.Sink.fold(0, lambda a, x: a + 1), keep="both")
    h = g.start(batch_size=16)
    time.sleep(0.3)
    h.kill_switch().shutdown()
    (_, ks), n = h.wait(timeout=30)
    assert n > 0


def test_keyboard_interrupt_cancels_cleanly():
    def interrupt():
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    t0 = time.time()
    with pytest.raises(KeyboardInterrupt):
        weir.Source.from_iter(Forever()).map(slow).run_with(weir.Sink.ignore())
    assert time.time() - t0 < 10
    # the process is still healthy afterwards
    assert weir.Source.range(3).run_with(weir.Sink.collect()) == [0, 1, 2]


def test_progress_bar_runs():
    assert weir.Source.range(5000).map(lambda x: x).to(weir.Sink.collect(), keep="right").run(progress=5000) == list(range(5000))


# --- from_iter -> fused ops -> Python sink as one stage ------------------------------------------


@pytest.mark.parametrize("bs", [None, 1, 3, 64])
def test_fused_pipeline_matches_unfused(bs):
    src = weir.Source.from_iter(range(1000)).map(lambda x: x * 2).filter(lambda x: x % 3 == 0)
    expect = [x * 2 for x in range(1000) if (x * 2) % 3 == 0]
    fused = src.to(weir.Sink.collect(), keep="right").run(batch_size=bs)
    unfused = src.to(weir.Sink.collect().named("c"), keep="right").run(batch_size=bs)
    assert fused == unfused == expect
    assert src.to(weir.Sink.fold(0, lambda a, x: a + x), keep="right").run(batch_size=bs) == sum(expect)
    seen = []
    assert src.to(weir.Sink.for_each(seen.append), keep="right").run(batch_size=bs) is None
    assert seen == expect
    assert weir.Source.from_iter(range(5)).to(weir.Sink.ignore(), keep="left").run() is None
    left, right = src.to(weir.Sink.fold(0, lambda a, x: a + 1), keep="both").run()
    assert left is None and right == len(expect)


def test_fused_pipeline_errors_name_the_operator():
    for sink, name in ((weir.Sink.collect(), "map"), (weir.Sink.fold(0, lambda a, x: a + x), "map")):
        with pytest.raises(weir.StageFailed) as info:
            weir.Source.range(100).map(boom_at(42, ValueError)).run_with(sink)
        assert info.value.stage_name == name and isinstance(info.value.__cause__, ValueError)
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(100).filter(lambda x: 1 / (x - 7)).run_with(weir.Sink.ignore())
    assert info.value.stage_name == "filter" and isinstance(info.value.__cause__, ZeroDivisionError)
    for sink, name in (
        (weir.Sink.fold(0, lambda a, x: a + 1 / (x - 5)), "fold"),
        (weir.Sink.for_each(boom_at(9, ValueError)), "for_each"),
    ):
        with pytest.raises(weir.StageFailed) as info:
            weir.Source.range(100).map(lambda x: x).run_with(sink)
        assert info.value.stage_name == name, info.value.stage_name
        assert info.value.stage.startswith(name + "#")


def test_fused_pipeline_resume_keeps_positions():
    dead = []
    out = (
        weir.Source.range(20)
        .map(boom_at(3, ValueError), supervision=[(ValueError, "resume")], dead_letters=dead)
        .filter(lambda x: 1 / (x - 11) != 0, supervision=[(ZeroDivisionError, "resume")], dead_letters=dead)
        .run_with(weir.Sink.collect(), batch_size=8)
    )
    assert out == [x for x in range(20) if x not in (3, 11)]
    assert [(d.element, type(d.error), d.stage.split("#")[0]) for d in dead] == [
        (3, ValueError, "map"),
        (11, ZeroDivisionError, "filter"),
    ]


def test_fused_pipeline_metrics_count_pulled_elements():
    h = weir.Source.range(1000).map(lambda x: x).to(weir.Sink.fold(0, lambda a, x: a + x), keep="right").start()
    assert h.wait(timeout=30) == sum(range(1000))
    counts = h.stage_counts()
    (path,) = [p for p in counts if p.startswith("from_iter")]
    assert counts[path]["out"] == 1000


def test_fused_pipeline_cancel_and_interrupt():
    h = weir.Source.from_iter(Forever()).map(slow).to(weir.Sink.fold(0, lambda a, x: a + 1), keep="right").start()
    time.sleep(0.2)
    h.cancel()
    with pytest.raises(weir.RunCancelled):
        h.wait(timeout=30)

    def interrupt():
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        weir.Source.from_iter(Forever()).map(lambda x: x).run_with(weir.Sink.fold(0, lambda a, x: a + 1))
    assert weir.Source.range(3).run_with(weir.Sink.collect()) == [0, 1, 2]
