"""The operator conformance suite (``conformance/cases/*.json``) run through the Python API.

The same cases run through the Rust API in ``operators/tests/conformance.rs``. A case that needs
exact demand, a silent consumer, a run that stays open or virtual time runs on ``weir.testing``
probes and a ``VirtualClock`` step by step, as the Rust runner does. The others run as plain runs:
each input becomes a source (an iterator for an input that completes or fails, a
``Source.queue`` for one that stays open), downstream cancellation after ``k`` elements becomes
``take(k)``, and the whole output, the way the run ended and whether each input was cancelled
are compared with the case. A case marked ``pending`` (or ``pending_py``) is a strict expected
failure: once it passes, the mark must go; ``flaky_py`` marks a Python behaviour that fails
only sometimes (a non-strict expected failure).
"""

import asyncio
import glob
import itertools
import json
import os
import time

import pytest

import weir
from weir import GraphBuilder, Sink, Source

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "..", "..", "conformance", "cases")
RUN_TIMEOUT = 5.0


class Boom(Exception):
    pass


def _pending(case):
    """The Python pending reason (``pending_py`` overrides ``pending``; ``""`` clears it)."""
    why = case.get("pending_py", case.get("pending"))
    return why or None


def _params():
    out = []
    for path in sorted(glob.glob(os.path.join(CASES, "*.json"))):
        with open(path) as f:
            doc = json.load(f)
        stem = os.path.basename(path)[:-5]
        for case in doc["cases"]:
            why = _pending(case)
            marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
            if not why and case.get("flaky_py"):
                # Fails only sometimes today: an expected failure that may pass.
                marks = [pytest.mark.xfail(strict=False, reason=case["flaky_py"])]
            out.append(pytest.param(case, id=f"{stem}: {case['op']}: {case['name']}", marks=marks))
    return out


# --- the case vocabulary -------------------------------------------------------------------------


def _guard(fail_on, x):
    if fail_on is not None and x == fail_on:
        raise Boom(f"boom on {x}")


def _unary(spec, fail_on):
    name, *a = spec
    g = {"add": lambda x: x + a[0], "mul": lambda x: x * a[0], "id": lambda x: x}[name]

    def f(x):
        _guard(fail_on, x)
        return g(x)

    return f


def _pred(spec, fail_on):
    name, *a = spec
    g = {
        "lt": lambda x: x < a[0],
        "gt": lambda x: x > a[0],
        "ne": lambda x: x != a[0],
        "even": lambda x: x % 2 == 0,
        "odd": lambda x: x % 2 != 0,
    }[name]

    def f(x):
        _guard(fail_on, x)
        return g(x)

    return f


def _binary(spec, fail_on):
    g = {"sum": lambda a, x: a + x, "max": max, "digits": lambda a, x: a * 10 + x}[spec[0]]

    def f(a, x):
        _guard(fail_on, x)
        return g(a, x)

    return f


def _many(spec, fail_on):
    name, *a = spec
    g = {"repeat": lambda x: [x] * a[0], "range": lambda x: list(range(x))}[name]

    def f(x):
        _guard(fail_on, x)
        return g(x)

    return f


def _recovery(with_, fails):
    def gen():
        yield from with_
        if fails:
            raise Boom("boom again")

    return Source.from_iter(gen())


class Unsupported(Exception):
    """The case uses something this runner cannot express in Python yet (the test is skipped)."""


def _flow(s, op, p):
    """Applies operator ``op`` with parameters ``p`` to the source ``s``."""
    fail = p.get("fail_on")
    if op == "identity":
        pass
    elif op in ("map", "try_map"):
        s = s.map(_unary(p["fn"], fail))
    elif op == "filter":
        s = s.filter(_pred(p["fn"], fail))
    elif op == "take":
        s = s.take(p["n"])
    elif op == "drop":
        s = s.drop(p["n"])
    elif op == "take_while":
        s = s.take_while(_pred(p["fn"], fail), inclusive=p.get("inclusive", False))
    elif op == "drop_while":
        s = s.drop_while(_pred(p["fn"], fail))
    elif op == "grouped":
        s = s.grouped(p["n"])
    elif op == "sliding":
        s = s.sliding(p["n"], p.get("step", 1))
    elif op == "scan":
        s = s.scan(p["zero"], _binary(p["fn"], fail))
    elif op == "fold":
        s = s.fold(p["zero"], _binary(p["fn"], fail))
    elif op == "reduce":
        s = s.reduce(_binary(p["fn"], fail))
    elif op == "intersperse":
        kw = {k: p[k] for k in ("start", "end") if k in p}
        s = s.intersperse(p["sep"], **kw)
    elif op in ("map_concat", "flat_map"):
        s = s.flat_map(_many(p["fn"], fail))
    elif op == "zip_with_index":
        s = s.zip_with_index()
    elif op == "recover":
        v = p.get("value")
        s = s.recover(lambda e: v)
    elif op == "recover_with_retries":
        w, fails = p["with"], p.get("with_fails", False)
        s = s.recover_with_retries(p["attempts"], lambda e: _recovery(w, fails))
    elif op == "buffer":
        s = s.buffer(p["size"], p["strategy"])
    elif op == "conflate":
        s = s.conflate(_binary(p["fn"], fail))
    elif op == "batch":
        s = s.batch(p["max"], lambda x: [x], lambda a, x: a + [x])
    elif op == "expand":
        if p["fn"] == ["count_from"]:
            s = s.expand(itertools.count)
        else:
            s = s.expand()
    elif op == "throttle":
        s = s.throttle(p["elements"], p["per_ms"] / 1000, p["burst"])
    elif op == "grouped_within":
        s = s.grouped_within(p["n"], p["within_ms"] / 1000)
    elif op == "delay":
        s = s.delay(p["ms"] / 1000)
    elif op in ("idle_timeout", "initial_timeout", "completion_timeout"):
        s = getattr(s, op)(p["ms"] / 1000)
    elif op in ("map_async", "map_async_unordered"):
        g = _unary(p["fn"], fail)

        async def f(x):
            await asyncio.sleep(0)
            return g(x)

        s = getattr(s, op)(f, p["parallelism"])
    elif op == "limit":
        s = s.limit(p["n"])
    else:
        raise Unsupported(f"no Python mapping for {op}")
    if "supervision" in p:
        s = s.with_supervision(default=p["supervision"])
    for attr in ("parallelism", "batch_size", "buffer_rows"):
        # map_async's parallelism is its own (coroutines in flight), not the stage attribute:
        # two subtasks would not keep the input order it promises.
        if attr in p and not (attr == "parallelism" and op.startswith("map_async")):
            s = getattr(s, attr)(p[attr])
    return s


FAN_IN = {"merge", "merge_preferred", "merge_prioritized", "concat", "interleave", "zip", "zip_with",
          "zip_latest", "merge_sorted"}
FAN_OUT = {"broadcast", "balance", "partition", "unzip"}


def _fan_in_junction(op, p):
    n, eager = p.get("inputs", 2), p.get("eager_complete", False)
    if op == "merge":
        return weir.Merge(n, eager_complete=eager)
    if op == "merge_preferred":
        return weir.MergePreferred(n - 1, eager_complete=eager)
    if op == "merge_prioritized":
        return weir.MergePrioritized(p["priorities"])
    if op == "concat":
        return weir.Concat(n)
    if op == "interleave":
        return weir.Interleave(n, p["segment"])
    if op == "zip":
        return weir.Zip()
    if op == "zip_latest":
        return weir.ZipLatest()
    if op == "zip_with":
        return weir.ZipWith(_binary(p["fn"], p.get("fail_on")))
    if op == "merge_sorted":
        return weir.MergeSorted()
    raise TypeError(f"{op} is not in the Python API")


def _fan_out_junction(op, p):
    eager = p.get("eager_cancel", False)
    if op == "broadcast":
        return weir.Broadcast(p["outputs"], eager_cancel=eager)
    if op == "balance":
        return weir.Balance(p["outputs"], eager_cancel=eager)
    if op == "partition":
        name, *a = p["fn"]
        fn = (lambda x: x % a[0]) if name == "mod" else (lambda x: x)
        return weir.Partition(p["outputs"], fn, eager_cancel=eager)
    return weir.Unzip(eager_cancel=eager)


# --- inputs ----------------------------------------------------------------------------------------


class Input:
    """One input port: an iterator (completes or fails after ``items``) or a ``Source.queue``
    (stays open). Records whether it was cancelled: the iterator closed before its end, or the
    queue reporting ``closed`` once the run is over."""

    def __init__(self, items, then, queue=None):
        self.items, self.then = list(items), then
        self.finished = False
        self.closed_early = False
        self.queue = None
        # A case's "source": {"queue": [capacity, strategy]}, else a queue only for "open".
        self.queue_args = queue or ([len(self.items) + 16, "backpressure"] if then == "open" else None)

    def source(self):
        if self.queue_args is not None:
            return Source.queue(*self.queue_args)

        def gen():
            try:
                yield from self.items
                if self.then == "fail":
                    raise Boom("boom")
                self.finished = True
            except GeneratorExit:
                self.closed_early = True
                raise

        return Source.from_iter(gen())

    def attach(self, mat):
        """Feeds the materialized queue of a queue input."""
        if self.queue_args is not None:
            self.queue = mat
            for x in self.items:
                # "closed": the stream already stopped (e.g. a take was satisfied).
                assert mat.offer(x) in ("enqueued", "closed")
                # One element at a time, each taken before the next is offered: the source is
                # then parked waiting for outside input whenever downstream finishes, the way
                # a queue fed by a producer usually is.
                deadline = time.monotonic() + 1.0
                while mat.buffered() and time.monotonic() < deadline:
                    time.sleep(0.001)

    def cancelled(self):
        if self.queue is not None:
            # A queue the case completed or failed is closed too: it was not cancelled.
            return self.then == "open" and self.queue.offer(0) == "closed"
        return self.closed_early


def _norm(v):
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    return v


def _run(case):
    """Builds and runs the case; returns (outputs, error or None, inputs)."""
    op, p = case["op"], case.get("params", {})
    steps = case.get("steps")
    if steps is not None:
        # Every input of a script is an open queue that the steps feed, complete or fail.
        n_in = 1 + max([st.get("in", 0) for st in steps if "send" in st or "send_each" in st]
                       + [st[k] for st in steps for k in ("complete", "fail") if k in st] + [0])
        if op in FAN_IN:
            n_in = max(n_in, p.get("inputs", 2))
        items, thens = [[] for _ in range(n_in)], ["open"] * n_in
    elif "inputs" in case:
        items = case["inputs"]
    else:
        items = [case.get("input", [])]
    if steps is None:
        thens = case.get("thens") or [case.get("then", "complete")] * len(items)
    queue = (case.get("source") or {}).get("queue")
    inputs = [Input(xs, t, queue) for xs, t in zip(items, thens)]
    cancel_after = case.get("cancel_after")
    n_out = len(case["expect"].get("outputs", [None]))
    outs = [[] for _ in range(n_out)]

    b = GraphBuilder()
    keys = []
    if op in FAN_IN:
        j = b.add(_fan_in_junction(op, p))
        for i, inlet in zip(inputs, j.inlets):
            o, k = b.add_source(i.source())
            b.connect(o, inlet)
            keys.append(k)
        tail = j.outlet
        if cancel_after is not None:
            ti, to, _ = b.add_flow(weir.Flow.create().take(cancel_after))
            b.connect(tail, ti)
            tail = to
        si, _ = b.add_sink(Sink.for_each(outs[0].append))
        b.connect(tail, si)
    elif op in FAN_OUT:
        src = inputs[0].source()
        if op == "unzip":
            k = p["k"]
            src = src.map(lambda x: (x, x * k))
        o, key = b.add_source(src)
        keys.append(key)
        j = b.add(_fan_out_junction(op, p))
        b.connect(o, j.inlet)
        for n, outlet in enumerate(j.outlets):
            si, _ = b.add_sink(Sink.for_each(outs[n].append))
            b.connect(outlet, si)
    else:
        s = _flow(inputs[0].source(), op, p)
        if cancel_after is not None:
            s = s.take(cancel_after)
        o, k = b.add_source(s)
        keys.append(k)
        si, _ = b.add_sink(Sink.for_each(outs[0].append))
        b.connect(o, si)

    handle = b.build(*keys).start()
    mats = handle.materialized
    mats = mats if isinstance(mats, tuple) else (mats,)
    for i, m in zip(inputs, mats):
        i.attach(m)
    for i in inputs:
        if i.queue is not None and i.then == "complete":
            i.queue.complete()
        elif i.queue is not None and i.then == "fail":
            i.queue.fail(Boom("boom"))
    if steps is not None:
        _script(steps, inputs, outs)
    error = None
    try:
        handle.wait(timeout=RUN_TIMEOUT)
    except TimeoutError:
        handle.cancel()
        try:
            handle.wait(timeout=RUN_TIMEOUT)
        except BaseException:
            pass
        raise AssertionError(f"the run did not end within {RUN_TIMEOUT}s; outputs so far {outs}")
    except weir.WeirError as e:
        error = e
    return [_norm(o) for o in outs], error, inputs


# Steps a run with unlimited demand can follow exactly; the others need weir.testing's probes.
_SCRIPTABLE = {"send", "send_each", "complete", "fail", "request", "expect", "expect_complete",
               "expect_error", "settle", "in", "out"}


def _scriptable(case):
    """Whether the case's steps mean the same with unlimited demand: only scriptable steps, and
    demand requested before the first element, at least as large as the output."""
    steps = case.get("steps", [])
    if any(set(st) - _SCRIPTABLE for st in steps):
        return False
    seen_send = demand = False
    want = max(len(o) for o in (case["expect"].get("outputs") or [case["expect"]["output"]]))
    for st in steps:
        if ("send" in st or "send_each" in st) and not demand:
            return False  # elements reach a silent consumer: that needs a probe sink
        if "request" in st:
            if seen_send or st["request"] < want:
                return False
            demand = True
        if "send" in st or "send_each" in st:
            seen_send = True
    return True


def _offer_each(q, xs):
    for x in xs:
        assert q.offer(x) in ("enqueued", "closed")
        deadline = time.monotonic() + 1.0
        while q.buffered() and time.monotonic() < deadline:
            time.sleep(0.001)


def _script(steps, inputs, outs):
    """Follows a case's steps against a running graph whose sinks take everything."""
    got = [0] * len(outs)
    for st in steps:
        i = st.get("in", 0)
        if "send" in st:
            for x in st["send"]:
                assert inputs[i].queue.offer(x) in ("enqueued", "closed")
        elif "send_each" in st:
            _offer_each(inputs[i].queue, st["send_each"])
        elif "complete" in st:
            inputs[st["complete"]].then = "complete"
            inputs[st["complete"]].queue.complete()
        elif "fail" in st:
            inputs[st["fail"]].then = "fail"
            inputs[st["fail"]].queue.fail(Boom("boom"))
        elif "expect" in st:
            o = st.get("out", 0)
            n = got[o] + len(st["expect"])
            deadline = time.monotonic() + 3.0
            while len(outs[o]) < n and time.monotonic() < deadline:
                time.sleep(0.002)
            assert _norm(outs[o][got[o]:n]) == st["expect"], f"step {st}: output {o} is {outs[o]}"
            got[o] = n
        elif "settle" in st:
            time.sleep(0.05)
        # request: demand is unlimited; expect_complete / expect_error: checked at the end.


def _message(e):
    parts = [str(e)]
    if e.__cause__ is not None:
        parts.append(str(e.__cause__))
    return " | ".join(parts)


# --- probes: cases that need exact demand, a silent consumer or the virtual clock ----------------


def _probe_steps(case, n_out):
    """The case as steps (the short form expanded as the Rust runner does)."""
    if "steps" in case:
        return list(case["steps"])
    items = case["inputs"] if "inputs" in case else [case.get("input", [])]
    thens = case.get("thens") or [case.get("then", "complete")] * len(items)
    steps = []
    k = case.get("cancel_after")
    if k is not None:
        steps.append({"request": k})
    elif "request" in case:
        steps += [{"request": case["request"], "out": o} for o in range(n_out)]
    for i, xs in enumerate(items):
        if xs:
            steps.append({"send": xs, "in": i})
    for i, t in enumerate(thens):
        if t in ("complete", "fail"):
            steps.append({t: i})
    if k is not None:
        want = case["expect"].get("outputs", [case["expect"].get("output")])[0]
        steps += [{"expect": want[:k]}, {"cancel": 0}]
    return steps


def _run_probed(case):
    """Runs the case with ``weir.testing`` probes on a virtual clock, as the Rust runner does;
    returns (outputs, terminals, error messages, cancelled per input)."""
    from weir import testing

    op, p, exp = case["op"], case.get("params", {}), case["expect"]
    n_out = len(exp.get("outputs", [None]))
    steps = _probe_steps(case, n_out)
    n_in = 1 + max([st.get("in", 0) for st in steps if "send" in st or "send_each" in st]
                   + [st[k] for st in steps for k in ("complete", "fail") if k in st] + [0])
    if op in FAN_IN:
        n_in = max(n_in, p.get("inputs", 2))
    b = GraphBuilder()
    in_keys, out_keys = [], []
    if op in FAN_IN:
        j = b.add(_fan_in_junction(op, p))
        for inlet in j.inlets:
            o, k = b.add_source(testing.probe_source())
            b.connect(o, inlet)
            in_keys.append(k)
        si, k = b.add_sink(testing.probe_sink())
        b.connect(j.outlet, si)
        out_keys.append(k)
    elif op in FAN_OUT:
        src = testing.probe_source()
        if op == "unzip":
            kk = p["k"]
            src = src.map(lambda x: (x, x * kk))
        o, k = b.add_source(src)
        in_keys.append(k)
        j = b.add(_fan_out_junction(op, p))
        b.connect(o, j.inlet)
        for outlet in j.outlets:
            si, k = b.add_sink(testing.probe_sink())
            b.connect(outlet, si)
            out_keys.append(k)
    else:
        if case.get("source"):
            raise Unsupported("a queue source with probes")
        flow = _flow(testing.probe_source(), op, p)
        if "buffer_rows" in case:  # the channel in front of the operator, as in the Rust runner
            flow = flow.buffer_rows(case["buffer_rows"])
        o, k = b.add_source(flow)
        in_keys.append(k)
        si, k = b.add_sink(testing.probe_sink())
        b.connect(o, si)
        out_keys.append(k)
    clock = testing.VirtualClock()
    run = clock.start(b.build(*(in_keys + out_keys)))
    mats = run.materialized
    srcs, sinks = list(mats[: len(in_keys)]), list(mats[len(in_keys):])
    seen = [[] for _ in sinks]
    ends = [None] * len(sinks)
    errors = [""] * len(sinks)
    ended = set()
    for st in steps:
        i, o = st.get("in", 0), st.get("out", 0)
        if "send" in st:
            srcs[i].offer_all(st["send"])
        elif "send_each" in st:
            for x in st["send_each"]:
                srcs[i].offer(x)
                clock.settle()
        elif "complete" in st:
            srcs[st["complete"]].complete()
            ended.add(st["complete"])
        elif "fail" in st:
            srcs[st["fail"]].fail(Boom("boom"))
            ended.add(st["fail"])
        elif "request" in st:
            sinks[o].request(st["request"])
        elif "cancel" in st:
            sinks[st["cancel"]].cancel()
            ends[st["cancel"]] = "cancelled"
        elif "expect" in st:
            for w in st["expect"]:
                got = _norm(sinks[o].expect_next())
                assert got == w, f"step {st}: got {got}, want {w}"
                seen[o].append(got)
        elif "expect_none" in st:
            sinks[st["expect_none"]].expect_no_element()
        elif "expect_complete" in st:
            sinks[st["expect_complete"]].expect_complete()
            ends[st["expect_complete"]] = "complete"
        elif "expect_error" in st:
            e = sinks[st["expect_error"]].expect_error()
            ends[st["expect_error"]], errors[st["expect_error"]] = "error", _message(e)
        elif "expect_cancelled" in st:
            clock.settle()
            assert srcs[st["expect_cancelled"]].is_cancelled() or run.done(), f"step {st}"
        elif "expect_not_cancelled" in st:
            clock.settle()
            assert not srcs[st["expect_not_cancelled"]].is_cancelled(), f"step {st}"
        elif "accepted_at_most" in st:
            clock.settle()
            assert srcs[i].delivered() <= st["accepted_at_most"], f"step {st}: {srcs[i].delivered()}"
        elif "accepted_at_least" in st:
            clock.settle()
            assert srcs[i].delivered() >= st["accepted_at_least"], f"step {st}: {srcs[i].delivered()}"
        elif "advance_ms" in st:
            clock.advance(st["advance_ms"] / 1000)
        elif "settle" in st:
            clock.settle()
    if "request" not in case:
        for o, s in enumerate(sinks):
            if ends[o] is None:
                s.request(1 << 40)
    clock.settle()
    for o, s in enumerate(sinks):
        if ends[o] is not None:
            continue
        for _t, kind, value in s.received():
            if kind == "next":
                seen[o].append(_norm(value))
            else:
                ends[o] = kind
                if kind == "error":
                    errors[o] = _message(value)
                break
        if ends[o] is None:
            ends[o] = "none"
    # A source the run tore down without it ending was cancelled too (asked only when needed:
    # `done()` allows the outcome a grace period of real time).
    flags = case["expect"].get("cancelled")
    flags = flags if isinstance(flags, list) else [flags] * len(srcs)
    cancelled = []
    for n, src in enumerate(srcs):
        c = src.is_cancelled()
        if not c and n < len(flags) and flags[n] and n not in ended:
            c = run.done()
        cancelled.append(c)
    if any(e == "none" for e in ends):
        run.cancel()
    return seen, ends, errors, cancelled


def _check_probed(case):
    exp = case["expect"]
    want = exp.get("outputs") or [exp["output"]]
    terminals = exp.get("terminals") or [exp["terminal"]] * len(want)
    seen, ends, errors, cancelled = _run_probed(case)
    if exp.get("unordered"):
        seen = [sorted(o, key=repr) for o in seen]
        want = [sorted(o, key=repr) for o in want]
    assert seen == want
    assert ends == terminals, f"terminals {ends}, want {terminals}: {errors}"
    needle = case.get("error_py", exp.get("error", "boom"))
    for e, t in zip(errors, ends):
        if t == "error":
            assert needle in e
    flags = exp.get("cancelled")
    if flags is not None:
        flags = flags if isinstance(flags, list) else [flags]
        for n, w in enumerate(flags):
            if w is not None:
                assert cancelled[n] == w, f"input {n}: cancelled={cancelled[n]}, want {w}"


@pytest.mark.parametrize("case", _params())
def test_case(case):
    exp = case["expect"]
    if "request" in case or ("steps" in case and not _scriptable(case)):
        if case.get("source"):
            pytest.skip("a Source.queue case with probes")
        if case["op"] not in FAN_IN | FAN_OUT | _KNOWN:
            pytest.skip(f"no Python mapping for {case['op']}")
        if case["op"].startswith("map_async"):
            pytest.skip("async def results arrive in real time, after the virtual clock settled")
        _check_probed(case)
        return
    if "build_error" in exp:
        with pytest.raises((ValueError, weir.WeirError)) as ei:
            _run(case)
        assert exp["build_error"].lower() in str(ei.value).lower()
        return
    terminals = exp.get("terminals") or [exp["terminal"]] * len(exp.get("outputs", [None]))
    if "none" in terminals:
        if case["op"].startswith("map_async"):
            pytest.skip("async def results arrive in real time, after the virtual clock settled")
        _check_probed(case)
        return
    if case.get("op") not in FAN_IN | FAN_OUT and case.get("op") not in _KNOWN:
        pytest.skip(f"no Python mapping for {case['op']}")

    outs, error, inputs = _run(case)

    want = exp.get("outputs") or [exp["output"]]
    if exp.get("unordered"):
        outs = [sorted(o, key=repr) for o in outs]
        want = [sorted(o, key=repr) for o in want]
    assert outs == want
    if "error" in terminals:
        assert error is not None, "the run completed; expected a failure"
        needle = case.get("error_py", exp.get("error", "boom"))
        assert needle in _message(error)
    else:
        assert error is None, f"the run failed: {_message(error)}"
    cancelled = exp.get("cancelled")
    if cancelled is not None:
        flags = cancelled if isinstance(cancelled, list) else [cancelled]
        got = [i.cancelled() for i in inputs]
        for n, (w, g) in enumerate(zip(flags, got)):
            if w is not None:
                assert g == w, f"input {n}: cancelled={g}, want {w}"


_KNOWN = {
    "identity", "map", "try_map", "filter", "take", "drop", "take_while", "drop_while", "grouped", "sliding",
    "scan", "fold", "reduce", "intersperse", "map_concat", "flat_map", "zip_with_index", "recover",
    "recover_with_retries", "buffer", "conflate", "batch", "expand", "throttle", "grouped_within",
    "delay", "idle_timeout", "initial_timeout", "completion_timeout", "map_async",
    "map_async_unordered", "limit",
}
