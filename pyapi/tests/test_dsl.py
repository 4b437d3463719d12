"""The DSL as documented: sources, flows, sinks, keyed aggregation, materialized values."""

import weir


def test_readme_snippet_fold():
    total = (
        weir.Source.from_iter(range(1_000_000))
        .map(lambda x: x * 2)
        .filter(lambda x: x % 3 == 0)
        .run_with(weir.Sink.fold(0, lambda acc, x: acc + x))
    )
    assert total == sum(x * 2 for x in range(1_000_000) if (x * 2) % 3 == 0)


def test_readme_snippet_word_count():
    lines = ["the cat sat", "the dog sat", "a cat"]
    counts = (
        weir.Source.from_iter(lines)
        .flat_map(str.split)
        .key_by(lambda w: w)
        .count()
        .run_with(weir.Sink.collect())
    )
    assert sorted(counts) == [("a", 1), ("cat", 2), ("dog", 1), ("sat", 2), ("the", 2)]


def test_keyed_count_parallel_matches_counter():
    import collections

    words = [f"w{i % 37}" for i in range(20_000)]
    counts = (
        weir.Source.from_iter(words).key_by().count().parallelism(3).run_with(weir.Sink.collect())
    )
    assert dict(counts) == dict(collections.Counter(words))


def test_keyed_fold_and_reduce():
    src = weir.Source.from_iter(range(10))
    folded = src.key_by(lambda x: x % 2).fold(0, lambda a, x: a + x).run_with(weir.Sink.collect())
    assert sorted(folded) == [(0, 20), (1, 25)]
    reduced = src.key_by(lambda x: x % 3).reduce(max).run_with(weir.Sink.collect())
    assert sorted(reduced) == [(0, 9), (1, 7), (2, 8)]


def test_blueprints_are_reusable_and_immutable():
    src = weir.Source.from_iter(range(5))
    doubled = src.map(lambda x: x * 2)
    assert src.run_with(weir.Sink.collect()) == [0, 1, 2, 3, 4]
    assert doubled.run_with(weir.Sink.collect()) == [0, 2, 4, 6, 8]
    assert doubled.run_with(weir.Sink.collect()) == [0, 2, 4, 6, 8]


def test_flow_via_and_to_and_keep():
    f = weir.Flow.create().map(lambda x: x + 1).filter(lambda x: x % 2 == 0)
    assert weir.Source.range(10).via(f).run_with(weir.Sink.collect()) == [2, 4, 6, 8, 10]
    sink = f.to(weir.Sink.collect(), keep="right")
    assert weir.Source.range(4).to(sink, keep="right").run() == [2, 4]
    both = weir.Source.range(3).to(weir.Sink.collect(), keep="both").run()
    assert both == (None, [0, 1, 2])


def test_simple_operators():
    s = weir.Source.range(10)
    assert s.take(3).run_with(weir.Sink.collect()) == [0, 1, 2]
    assert s.drop(8).run_with(weir.Sink.collect()) == [8, 9]
    assert s.grouped(4).run_with(weir.Sink.collect()) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert s.scan(0, lambda a, x: a + x).run_with(weir.Sink.last()) == 45
    assert s.fold(0, lambda a, x: a + x).run_with(weir.Sink.head()) == 45
    assert weir.Source.range(1, 6).reduce(lambda a, x: a * x).run_with(weir.Sink.head()) == 120
    assert s.map_batches(lambda b: [sum(b)]).run_with(weir.Sink.collect()) == [45]
    assert weir.Source.empty().run_with(weir.Sink.head_option()) is None
    assert s.run_with(weir.Sink.reduce(lambda a, b: a + b)) == 45
    seen = []
    assert s.run_with(weir.Sink.for_each(seen.append)) is None
    assert seen == list(range(10))


def test_merge_concat_zip_linear():
    a, b = weir.Source.range(3), weir.Source.from_iter("xyz")
    assert sorted(a.merge(weir.Source.range(3, 6)).run_with(weir.Sink.collect())) == list(range(6))
    assert a.concat(weir.Source.range(3, 5)).run_with(weir.Sink.collect()) == [0, 1, 2, 3, 4]
    assert a.zip(b).run_with(weir.Sink.collect()) == [(0, "x"), (1, "y"), (2, "z")]


def test_async_boundary_and_parallelism_keep_results():
    out = (
        weir.Source.range(5000)
        .map(lambda x: x + 1)
        .async_boundary()
        .map(lambda x: x * 3)
        .parallelism(2)
        .run_with(weir.Sink.collect())
    )
    assert sorted(out) == [(x + 1) * 3 for x in range(5000)]


def test_graph_builder_junctions():
    b = weir.GraphBuilder()
    out, _ = b.add_source(weir.Source.range(100))
    bc = b.add(weir.Broadcast(2))
    b.connect(out, bc.inlet)
    evens = b.via(bc.outlets[0], weir.Flow.create().filter(lambda x: x % 2 == 0))
    odds = b.via(bc.outlets[1], weir.Flow.create().filter(lambda x: x % 2 == 1))
    m = b.add(weir.Merge(2))
    b.connect(evens, m.inlets[0])
    b.connect(odds, m.inlets[1])
    sink_in, k = b.add_sink(weir.Sink.collect())
    b.connect(m.outlet, sink_in)
    g = b.build(k)
    assert sorted(g.run()) == list(range(100))
    assert sorted(g.run()) == list(range(100))  # reusable
    assert "broadcast" in g.to_mermaid()


def test_graph_builder_zip_balance_concat():
    b = weir.GraphBuilder()
    a, _ = b.add_source(weir.Source.range(5))
    c, _ = b.add_source(weir.Source.from_iter("abcde"))
    z = b.add(weir.Zip())
    b.connect(a, z.inlets[0])
    b.connect(c, z.inlets[1])
    bal = b.add(weir.Balance(2))
    b.connect(z.outlet, bal.inlet)
    cc = b.add(weir.Concat(2))
    b.connect(bal.outlets[0], cc.inlets[0])
    b.connect(bal.outlets[1], cc.inlets[1])
    i, k = b.add_sink(weir.Sink.collect())
    b.connect(cc.outlet, i)
    assert sorted(b.build(k).run()) == [(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "e")]


def test_partial_graphs():
    b = weir.GraphBuilder()
    i, o, _ = b.add_flow(weir.Flow.create().map(lambda x: -x))
    flow = b.build_flow(i, o)
    assert weir.Source.range(3).via(flow).run_with(weir.Sink.collect()) == [0, -1, -2]


def test_invalid_graph_raises():
    b = weir.GraphBuilder()
    b.add_source(weir.Source.range(3))
    try:
        b.build()
    except weir.GraphInvalid as e:
        assert "not connected" in str(e)
    else:
        raise AssertionError("expected GraphInvalid")


def test_mermaid_and_repr():
    g = weir.Source.range(3).map(str).named("stringify").to(weir.Sink.collect())
    m = g.to_mermaid()
    assert "stringify" in m and m.startswith(("flowchart", "graph"))
    assert g._repr_markdown_().startswith("```mermaid")
    assert "mermaid" in g._repr_html_()
