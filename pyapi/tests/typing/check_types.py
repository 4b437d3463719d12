"""What the type checkers must infer for the Python DSL, and the mistakes they must reject.

Checked by ``mypy --strict`` (``mypy.ini``) and ``pyright`` in strict mode (``pyrightconfig.json``),
from ``pyapi/tests/test_typing.py``; never run. Every expected error is marked on its line, for
mypy by ``# type: ignore[code]`` (``warn_unused_ignores``) and for pyright by
``# pyright: ignore[rule]`` (``reportUnnecessaryTypeIgnoreComment``): an error that disappears
fails the check as surely as a new one.
"""

from typing import Any, Optional, Tuple, Union

from typing_extensions import assert_type

import weir
import weir._native as weir_native
import weir.testing

src = weir.Source.from_iter([1, 2, 3])
words = weir.Source.from_iter(["a", "b"])
double: weir.Flow[int, int] = weir.Flow.create().map(lambda x: x * 2)

# -- elements flow through the operators ------------------------------------------------------
assert_type(src, weir.Source[int])
assert_type(src.map(str), weir.Source[str])
assert_type(src.map(lambda x: x * 2).filter(lambda x: x % 3 == 0), weir.Source[int])
assert_type(src.flat_map(lambda x: [str(x)] * x), weir.Source[str])
assert_type(src.filter_map(lambda x: str(x) if x else None), weir.Source[str])
assert_type(src.scan("", lambda acc, x: acc + str(x)), weir.Source[str])
assert_type(src.fold(0.0, lambda acc, x: acc + x), weir.Source[float])
assert_type(src.reduce(lambda a, b: a + b), weir.Source[int])
assert_type(src.grouped(2), weir.Source[list[int]])
assert_type(src.sliding(2).map(sum), weir.Source[int])
assert_type(src.zip(words), weir.Source[tuple[int, str]])
assert_type(src.zip_with(words, lambda n, w: w * n), weir.Source[str])
assert_type(src.zip_with_index(), weir.Source[tuple[int, int]])
assert_type(src.merge(words), weir.Source[int | str])
assert_type(src.concat(src).take(2).named("first two"), weir.Source[int])
assert_type(src.intersperse(0), weir.Source[int])
assert_type(src.recover(lambda e: -1), weir.Source[int])
assert_type(src.key_by(lambda x: x % 2 == 0).count(), weir.Source[tuple[bool, int]])
assert_type(words.key_by().fold(0, lambda acc, w: acc + len(w)), weir.Source[tuple[str, int]])
assert_type(src.group_by(4, lambda x: x % 4).merge_substreams(), weir.Source[int])
assert_type(src.split_when(lambda x: x == 2).merge_substreams_via(double.map(str)), weir.Source[str])
assert_type(weir.Source.range(3), weir.Source[int])
assert_type(weir.Source.single("x").via(weir.Flow.create()), weir.Source[Any])
assert_type(weir.Source.unfold(0, lambda s: (s + 1, str(s)) if s < 3 else None), weir.Source[str])

# -- sinks and what a run returns -----------------------------------------------------------------
assert_type(src.run_with(weir.Sink.collect()), list[int])
assert_type(src.run_with(weir.Sink.fold(0, lambda acc, x: acc + x)), int)
assert_type(src.run_with(weir.Sink.head_option()), Optional[int])
assert_type(src.run_with(weir.Sink.ignore()), None)
assert_type(src.to(weir.Sink.collect(), "right"), weir.RunnableGraph[list[int]])
assert_type(src.to(weir.Sink.collect(), "right").run(), list[int])
assert_type(src.to(weir.Sink.last(), "both"), weir.RunnableGraph[tuple[Any, int]])
assert_type(src.to(weir.Sink.last(), "none"), weir.RunnableGraph[None])
assert_type(src.to(weir.Sink.for_each(print), "right"), weir.RunnableGraph[None])
assert_type(src.for_each(print), weir.RunnableGraph[None])

handle = src.to(weir.Sink.collect(), "right").start()
assert_type(handle, weir.RunHandle[list[int]])
assert_type(handle.wait(), list[int])
assert_type(handle.kill_switch(), Optional[weir.UniqueKillSwitch])
assert_type(src.to(weir.Sink.queue(), "right").run(), weir.SinkQueue[int])


async def awaited() -> None:
    assert_type(await src.run_with_async(weir.Sink.collect()), list[int])
    assert_type(await handle.wait_async(), list[int])


# -- flows -------------------------------------------------------------------------------------------
assert_type(double.map(str), weir.Flow[int, str])
assert_type(src.via(double.map(str)), weir.Source[str])
assert_type(double.to(weir.Sink.collect(), "right"), weir.Sink[int, list[int]])
assert_type(double.key_by(lambda x: x > 2).count(), weir.Flow[int, tuple[bool, int]])
assert_type(double.reduce(lambda a, b: a + b), weir.Flow[int, int])
assert_type(double.conflate(lambda a, b: a + b), weir.Flow[int, int])


def seed(x: int) -> list[int]:
    return [x]


def add(acc: list[int], x: int) -> list[int]:
    return acc + [x]


assert_type(double.batch(10, seed, add), weir.Flow[int, list[int]])
assert_type(double.group_by(2, lambda x: x % 2).merge_substreams(), weir.Flow[int, int])
assert_type(double.group_by(2, flow=double.map(str)), weir.Flow[int, str])
assert_type(double.for_each(print), weir.Sink[int, None])
assert_type(double.via(double.map(str)).to(weir.Sink.head(), "right"), weir.Sink[int, str])
assert_type(weir.Flow.create(), weir.Flow[Any, Any])

# -- hubs, restarts, framing, graphs, test probes -------------------------------------------------------
assert_type(src.to(weir.BroadcastHub.sink(), "right").run(), weir.Source[int])
assert_type(src.to(weir.PartitionHub.sink(lambda n, x: x % n, 2), "right").run(), weir.Source[int])
assert_type(weir.MergeHub.source(), weir.Source[Any])
assert_type(weir.RestartSource.with_backoff(lambda: words, min_backoff=0.1, max_backoff=1.0), weir.Source[str])
assert_type(weir.RestartFlow.on_failures_with_backoff(double, min_backoff=0.1, max_backoff=1.0), weir.Flow[int, int])
assert_type(weir.Framing.delimiter(b"\n", 1024), weir.Flow[bytes, bytes])
assert_type(weir.Source.from_iter([b"a\nb"]).via(weir.Framing.delimiter(b"\n", 1024)), weir.Source[bytes])
builder = weir.GraphBuilder()
outlet, key = builder.add_source(src)
fan = builder.add(weir.Broadcast(2))
builder.connect(outlet, fan.inlet)
assert_type(fan.outlets, list[weir_native.Outlet])
assert_type(builder.build(key), weir.RunnableGraph[Any])
assert_type(weir.testing.probe_source(), weir.Source[Any])

# -- supervision -----------------------------------------------------------------------------------
dead: list[weir.DeadLetter] = []
assert_type(src.map(str, supervision=[(ValueError, "resume")], dead_letters=dead), weir.Source[str])
assert_type(src.map(str).with_supervision([(KeyError, "restart")], default="stop"), weir.Source[str])

# -- event time and windows -----------------------------------------------------------------------
timed = weir.Source.from_iter([("a", 1, 0.5)]).assign_timestamps(lambda e: e[2], weir.BoundedOutOfOrderness(0.1))
assert_type(timed, weir.Source[tuple[str, int, float]])
by_key = timed.key_by(lambda e: e[0])
assert_type(by_key.window(weir.Tumbling(1.0), allowed_lateness=0.5), weir.Windowed[weir.Source[Any], str, tuple[str, int, float]])
assert_type(by_key.window(weir.Session(2.0), late_to=weir.Sink.ignore()).sum(lambda e: e[1]), weir.Source[tuple[str, float, float, int | float]])
assert_type(by_key.window(weir.Tumbling(1.0)).count(), weir.Source[tuple[str, float, float, int]])
assert_type(by_key.window(weir.Tumbling(1.0)).process(lambda k, s, e, xs: len(xs)), weir.Source[tuple[str, float, float, int]])
events_flow: weir.Flow[tuple[str, int, float], tuple[str, int, float]] = weir.Flow.create()
windowed_flow = events_flow.assign_timestamps(lambda e: e[2], weir.Monotonous())
assert_type(windowed_flow.key_by(lambda e: e[0]).window(weir.Sliding(2.0, 1.0)).mean(lambda e: e[1]), weir.Flow[tuple[str, int, float], tuple[str, float, float, float]])
assert_type(by_key.window(weir.Tumbling(1.0), processing_time=True).count(), weir.Source[tuple[str, float, float, int]])
assert_type(by_key.process(lambda e, ctx: ctx.emit(e[1])), weir.Source[Any])
by_key.window(weir.Tumbling(1.0)).sum(lambda e: e[0])  # type: ignore[arg-type, return-value]  # pyright: ignore[reportArgumentType]
timed.assign_timestamps(lambda e: e[2], 0.1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

# -- files, checkpoints and key codecs -------------------------------------------------------------
assert_type(weir.Source.from_lines("in/*.txt"), weir.Source[str])
assert_type(weir.Source.from_csv("in.csv"), weir.Source[tuple[str, ...]])
assert_type(weir.Source.from_csv("in.csv", decode=lambda t: int(t[0])), weir.Source[int])
assert_type(weir.Source.from_json_lines("in.jsonl", raw=True), weir.Source[str])
assert_type(src.run_with(weir.Sink.to_files("out", encode=lambda x: f"{x}")), list[str])
assert_type(words.run_with(weir.Sink.to_files("out"), state_dir="state", checkpoint_interval=1.0, retain=2), list[str])
ckpt = src.to(weir.Sink.collect(), "right").start(state_dir="state")
assert_type(ckpt.latest_checkpoint, Optional[int])
assert_type(words.key_by(key_codec="pickle").count(), weir.Source[tuple[str, int]])

# -- mistakes the checkers reject ------------------------------------------------------------------
words.key_by(key_codec="json")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
src.map(lambda x: x.upper())  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownLambdaType]
words.via(double)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
src.to(weir.Sink.collect(), "rigth")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
src.map(str, supervision=[(ValueError, "skip")])  # type: ignore[list-item]  # pyright: ignore[reportArgumentType]
src.map(str).with_supervision(default="ignore")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
joined: list[str] = src.run_with(weir.Sink.collect())  # type: ignore[arg-type]  # pyright: ignore[reportAssignmentType]
src.run_with(weir.Sink.fold("", lambda acc, s: acc + s.upper()))  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownLambdaType]
weir.RestartSource.with_backoff(double, min_backoff=0.1, max_backoff=1.0)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
weir.Framing.length_prefix(4, 1024, byte_order="network")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
src.buffer(8, "drop_oldest")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
weir.Source.from_iter([1]).zip(words).map(lambda p: p[0] + p[1])  # type: ignore[operator]  # pyright: ignore[reportOperatorIssue, reportUnknownLambdaType]


def keyed_built_ins() -> None:
    rows = weir.Source.from_iter([("a", 1)])
    assert_type(rows.key_by(lambda r: r[0]).sum(1), weir.Source[Tuple[str, Union[int, float]]])
    assert_type(rows.key_by(lambda r: r[0]).mean(lambda r: r[1]), weir.Source[Tuple[str, float]])
    assert_type(rows.key_by(lambda r: r[0]).first(), weir.Source[Tuple[str, Tuple[str, int]]])
    assert_type(rows.key_by(0).last(1), weir.Source[Tuple[Any, Any]])
