"""Python jobs over nodes (weir.cluster): node processes of one job started as a local cluster
exchange elements by key, their checkpoints complete only once every node wrote them, and a
node killed mid-run restarts every node from the newest checkpoint they all completed with
the counts still exact."""

import os
import sys
import textwrap
from collections import Counter

import pytest

import weir

# One job: 6000 words over the nodes, an exchange by word, a count per word. A node prints what
# it restored and its counts; node 1 of the first attempt dies once two checkpoints completed.
NODE = textwrap.dedent(
    """
    import os, sys, time
    import weir

    node = weir.cluster.join()
    assert node.share == (node.node, node.nodes)
    words = [f"w{i % 37}" for i in range(6000)]
    mine = words[node.node :: node.nodes]
    state = os.path.join(os.environ["WEIR_CLUSTER_DIR"], f"state-{node.node}")
    h = (
        weir.Source.from_iter(mine)
        .throttle(2000, 1.0, burst=50)
        .via(node.exchange(key=lambda w: w))
        .key_by(lambda w: w)
        .count()
        .to(weir.Sink.collect(), "right")
        .start(cluster=node, state_dir=state, checkpoint_interval=0.05)
    )
    if node.epoch == 1 and node.node == 1 and os.environ.get("KILL") == "1":
        while (h.latest_checkpoint or 0) < 2:
            time.sleep(0.01)
        os._exit(3)
    counts = h.wait()
    node.finish()
    print(f"restored {h.restored_checkpoint} of {node.restore_id}")
    for w, n in sorted(counts):
        assert node.owner(w) == node.node, w
        print(f"{w} {n}")
    """
)


def _union(outs):
    total = Counter()
    restored = []
    for out in outs:
        lines = out.splitlines()
        restored.append(lines[0])
        for line in lines[1:]:
            w, n = line.split()
            assert w not in total, f"{w} counted on two nodes"
            total[w] = int(n)
    return total, restored


MODEL = Counter(f"w{i % 37}" for i in range(6000))


@pytest.mark.parametrize("kill", [False, True])
def test_three_node_processes_count_exactly_the_single_process_words(tmp_path, kill):
    script = tmp_path / "node.py"
    script.write_text(NODE)
    env = dict(os.environ, KILL="1" if kill else "0")
    old = dict(os.environ)
    os.environ.update(env)
    try:
        out = weir.cluster.run_local(3, [sys.executable, str(script)], dir=tmp_path / "cluster", max_restarts=3)
    finally:
        os.environ.clear()
        os.environ.update(old)
    total, restored = _union(out.stdout)
    assert total == MODEL
    if kill:
        assert (out.epoch, out.restarts) == (2, 1)
        # Every node restored the same checkpoint, one the killed node had seen complete.
        ids = {r.split()[1] for r in restored}
        assert len(ids) == 1 and int(ids.pop()) >= 2, restored
        assert all(r.split()[1] == r.split()[3] for r in restored), restored
    else:
        assert (out.epoch, out.restarts) == (1, 0)
        assert restored == ["restored None of 0"] * 3


def test_join_without_a_place_in_a_job_is_none_and_bad_arguments_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("WEIR_NODES", raising=False)
    assert weir.cluster.join() is None
    with pytest.raises(ValueError, match="give node, nodes, cluster_dir and epoch together"):
        weir.cluster.join(node=0)
    with pytest.raises(ValueError, match="nodes must be at least 1"):
        weir.cluster.run_local(0, ["true"])
    with pytest.raises(TypeError, match="cluster must be a weir.cluster.ClusterNode"):
        weir.Source.from_iter([1]).to(weir.Sink.ignore()).run(cluster=object())


def test_an_element_that_cannot_cross_nodes_fails_the_stage_naming_it(tmp_path):
    script = tmp_path / "node.py"
    script.write_text(
        textwrap.dedent(
            """
            import weir
            node = weir.cluster.join()
            class Point:
                def __repr__(self):
                    return "Point()"
            try:
                weir.Source.from_iter([Point()]).via(node.exchange(key=lambda p: 1)).to(weir.Sink.ignore()).run()
            except weir.StageFailed as e:
                print(f"failed: {e} | element {e.element!r}")
            node.finish()
            """
        )
    )
    out = weir.cluster.run_local(1, [sys.executable, str(script)], dir=tmp_path / "cluster", max_restarts=0)
    text = out.stdout[0]
    assert text.startswith("failed: "), text
    assert text == (
        "failed: stage 'exchange-encode#1' failed: TypeError: exchange: a Point cannot cross nodes: "
        "elements cross as built-in values (None, bool, int, float, str, bytes, and tuples, lists and "
        "dicts of them), never as pickles | element Point()\n"
    ), text


# A job reading a folder of 12 files in shares, an exchange by word, a count per word; it starts
# from the cluster savepoint in SP when set, and reads at RATE lines a second (the same graph either
# way: a savepoint restores into the graph that wrote it).
SHARED = textwrap.dedent(
    """
    import os
    import weir

    node = weir.cluster.join()
    state = os.path.join(os.environ["WEIR_CLUSTER_DIR"], f"state-{node.node}")
    rate = int(os.environ["RATE"])
    src = weir.Source.from_lines(os.environ["INPUT"], share=node.share).throttle(rate, 1.0, burst=20)
    h = (
        src.via(node.exchange(key=lambda w: w))
        .key_by(lambda w: w)
        .count()
        .to(weir.Sink.collect(), "right")
        .start(cluster=node, state_dir=state, checkpoint_interval=0.05,
               restore_from=os.environ.get("SP") or None)
    )
    counts = h.wait()
    node.finish()
    print(f"restored {h.restored_checkpoint}")
    for w, n in sorted(counts):
        print(f"{w} {n}")
    """
)


def _run_with_env(env, *args, **kwargs):
    old = dict(os.environ)
    os.environ.update(env)
    try:
        return weir.cluster.run_local(*args, **kwargs)
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_a_savepoint_of_a_cancelled_job_resumes_exactly_on_three_and_on_two_nodes(tmp_path):
    import threading
    import time

    inp = tmp_path / "in"
    inp.mkdir()
    words = [f"w{i % 37}" for i in range(6000)]
    for f in range(12):
        (inp / f"part-{f:02}.txt").write_text("".join(w + "\n" for w in words[f * 500 : (f + 1) * 500]))
    script = tmp_path / "node.py"
    script.write_text(SHARED)
    first = tmp_path / "first"
    ended = {}

    def run_first():
        try:
            _run_with_env({"INPUT": str(inp), "RATE": "400", "SP": ""}, 3, [sys.executable, str(script)],
                          dir=first, max_restarts=0)
            ended["outcome"] = "finished"
        except weir.WeirError as e:
            ended["outcome"] = str(e)

    t = threading.Thread(target=run_first)
    t.start()
    try:
        until = time.monotonic() + 60
        while True:
            try:
                s = weir.cluster.status(first)
            except weir.WeirError:
                s = None
            if s is not None and (s["latest_complete"] or 0) >= 3:
                break
            assert time.monotonic() < until, f"no checkpoints: {s}"
            time.sleep(0.02)
        assert s["state"] == "running" and len(s["nodes"]) == 3, s
        assert all(n["alive"] for n in s["nodes"]), s
        weir.cluster.cancel(first)
        assert weir.cluster.wait_stopped(first, 30) == "cancelled"
    finally:
        t.join(60)
    assert ended["outcome"] != "finished", ended
    assert weir.cluster.status(first)["state"] == "cancelled"
    sp = weir.cluster.savepoint(first, tmp_path / "sp")
    assert sp.nodes == 3 and sp.checkpoint >= 3 and sp.files > 0 and sp.bytes > 0, sp
    assert sp.path == str(tmp_path / "sp")
    with pytest.raises(weir.WeirError, match="holds a savepoint already"):
        weir.cluster.savepoint(first, tmp_path / "sp")
    with pytest.raises(weir.WeirError):
        weir.cluster.cancel(first)
    # From the savepoint, on as many nodes and on two (rescaled): every word counted once.
    model = Counter(words)
    for nodes in (3, 2):
        out = _run_with_env({"INPUT": str(inp), "RATE": "1000000", "SP": sp.path}, nodes,
                            [sys.executable, str(script)], dir=tmp_path / f"again-{nodes}", max_restarts=0)
        total, restored = _union(out.stdout)
        assert restored == [f"restored {sp.checkpoint}"] * nodes, restored
        assert total == model, nodes


def test_cluster_controls_refuse_a_directory_where_no_job_ran(tmp_path):
    with pytest.raises(weir.WeirError):
        weir.cluster.status(tmp_path)
    with pytest.raises(weir.WeirError):
        weir.cluster.savepoint(tmp_path, tmp_path / "sp")
    with pytest.raises(ValueError, match="timeout"):
        weir.cluster.wait_stopped(tmp_path, -1)
