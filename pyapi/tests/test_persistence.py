"""Event-sourced entities from Python: exact replies and journal contents, recovery in a new
run, replayed commands applied once, snapshots, a handler exception naming the entity, queries
by persistence id and tag, and the RocksDB journal across a reopen."""

import pytest

import weir


class Account(weir.EventSourcedEntity):
    def persistence_id(self, command):
        return command["account"]

    def initial_state(self):
        return {"balance": 0, "events": 0}

    def on_command(self, state, command):
        amount = command["amount"]
        if state["balance"] + amount < 0:
            return weir.Effect.reply(f"{command['account']}: rejected {amount}")
        return weir.Effect.persist({"amount": amount}).then_reply(
            f"{command['account']}: {state['balance'] + amount}"
        )

    def on_event(self, state, event):
        return {"balance": state["balance"] + event["amount"], "events": state["events"] + 1}

    def tags(self, event):
        return ["deposits"] if event["amount"] >= 0 else ["withdrawals"]

    def on_recovered(self, pid, state, seq):
        return f"{pid} recovered at {state['balance']} after {seq}" if seq else None

    def on_duplicate(self, state, command):
        return f"{command['account']}: duplicate {command['pos']}"


def commands(*pairs):
    return [{"pos": i, "account": a, "amount": x} for i, (a, x) in enumerate(pairs)]


def run(journal, cmds, **kw):
    return (
        weir.Source.from_iter(cmds)
        .via(weir.Flow.event_sourced(Account, journal, **kw))
        .run_with(weir.Sink.collect())
    )


def test_commands_persist_events_and_reply_in_order():
    j = weir.Journal.memory()
    out = run(j, commands(("a", 10), ("b", 5), ("a", -4), ("b", -9)))
    assert out == ["a: 10", "b: 5", "a: 6", "b: rejected -9"]
    assert j.events("a") == [(1, {"amount": 10}), (2, {"amount": -4})]
    assert j.events("b") == [(1, {"amount": 5})]
    assert (j.highest_seq("a"), j.highest_seq("nobody")) == (2, 0)


def test_a_new_run_recovers_and_replayed_commands_apply_once():
    j = weir.Journal.memory()
    cmds = commands(("a", 10), ("b", 7), ("a", -4), ("b", 1))
    pos = lambda c: c["pos"]
    assert run(j, cmds[:3], position=pos) == ["a: 10", "b: 7", "a: 6"]
    # A restart replays from an earlier position: the first two again, then the rest.
    out = run(j, cmds[1:], position=pos)
    assert out == [
        "b recovered at 7 after 1",
        "b: duplicate 1",
        "a recovered at 6 after 2",
        "a: duplicate 2",
        "b: 8",
    ]
    assert j.events("b") == [(1, {"amount": 7}), (2, {"amount": 1})]


def test_snapshots_and_sharding_keep_each_entity_exact():
    j = weir.Journal.memory()
    cmds = commands(*[("abc"[i % 3], i) for i in range(1, 31)])
    out = run(j, cmds, snapshot_every=4, parallelism=2)
    per = {}
    for r in out:
        acct, bal = r.split(": ")
        per.setdefault(acct, []).append(int(bal))
    want = {}
    for c in cmds:
        b = want.get(c["account"], [0])
        want.setdefault(c["account"], []).append((b[-1] if b else 0) + c["amount"])
    assert per == {k: v for k, v in want.items()}
    assert j.highest_seq("a") == 10
    # A new run recovers from the latest snapshot plus later events.
    assert run(j, commands(("a", 1))) == [f"a recovered at {want['a'][-1]} after 10", f"a: {want['a'][-1] + 1}"]


class Broken(Account):
    def on_command(self, state, command):
        if command["amount"] == 13:
            raise ValueError("unlucky thirteen")
        return super().on_command(state, command)


def test_a_handler_exception_fails_the_run_naming_the_error():
    j = weir.Journal.memory()
    with pytest.raises(weir.StageFailed) as e:
        (
            weir.Source.from_iter(commands(("a", 1), ("a", 13)))
            .via(weir.Flow.event_sourced(Broken, j))
            .run_with(weir.Sink.collect())
        )
    assert "unlucky thirteen" in str(e.value)
    out = (
        weir.Source.from_iter(commands(("a", 1), ("a", 13), ("a", 2)))
        .via(weir.Flow.event_sourced(Broken, weir.Journal.memory()).with_supervision(default="resume"))
        .run_with(weir.Sink.collect())
    )
    assert out == ["a: 1", "a: 3"]


def test_queries_read_by_persistence_id_and_by_tag():
    j = weir.Journal.memory()
    run(j, commands(("a", 10), ("b", 5), ("a", -4), ("b", 2)))
    by_pid = weir.Source.events_by_persistence_id(j, "a", from_seq=2).run_with(weir.Sink.collect())
    assert by_pid == [{"pid": "a", "seq": 2, "event": {"amount": -4}, "tags": ["withdrawals"]}]
    deposits = weir.Source.events_by_tag(j, "deposits").run_with(weir.Sink.collect())
    assert [(d["pid"], d["seq"], d["event"]) for d in deposits] == [
        ("a", 1, {"amount": 10}),
        ("b", 1, {"amount": 5}),
        ("b", 2, {"amount": 2}),
    ]
    assert [d["offset"] for d in deposits] == sorted(d["offset"] for d in deposits)


def test_the_rocksdb_journal_keeps_events_across_a_reopen(tmp_path):
    j = weir.Journal.rocksdb(str(tmp_path / "journal"))
    assert run(j, commands(("a", 3), ("a", 4))) == ["a: 3", "a: 7"]
    del j
    j = weir.Journal.rocksdb(str(tmp_path / "journal"))
    assert run(j, commands(("a", 1))) == ["a recovered at 7 after 2", "a: 8"]
    assert j.events("a") == [(1, {"amount": 3}), (2, {"amount": 4}), (3, {"amount": 1})]
