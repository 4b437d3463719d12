//! Event-sourced entities over the journal: exact replies and journal contents, recovery from
//! events and snapshots, commands replayed after a restart applied once, a corrupt entry
//! failing only its entity, a failed append applying nothing, and journal queries.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::{DeadLetterSink, Supervision};
use weir_operators::persistence::{
    Effect, EventSourced, EventSourcedSettings, Liveness, event_sourced, events_by_persistence_id,
    events_by_tag,
};
use weir_operators::prelude::*;
use weir_state::journal::{
    AtomicWrite, InMemoryJournal, Journal, JournalEntry, JournalError, JournalWatch, SnapshotEntry,
    TaggedEntry,
};

async fn timed<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

/// A command to an account: `(position, account, amount)`; a negative amount withdraws.
#[derive(Debug, Clone, PartialEq)]
struct Cmd {
    pos: u64,
    account: u32,
    amount: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
enum Ev {
    Deposited(i64),
    Withdrew(i64),
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Balance {
    balance: i64,
    events: u64,
}

struct Bank;

impl EventSourced for Bank {
    type Command = Cmd;
    type Event = Ev;
    type State = Balance;
    type Reply = String;
    fn persistence_id(&self, c: &Cmd) -> Result<String, StageError> {
        Ok(format!("acct-{}", c.account))
    }
    fn command(&self, s: &Balance, c: Cmd) -> Result<Effect<Ev, String>, StageError> {
        let id = c.account;
        Ok(if c.amount >= 0 {
            Effect::persist(Ev::Deposited(c.amount)).then_reply(format!(
                "{id}: +{} = {}",
                c.amount,
                s.balance + c.amount
            ))
        } else if s.balance + c.amount < 0 {
            Effect::reply(format!("{id}: rejected {}", c.amount))
        } else {
            Effect::persist(Ev::Withdrew(-c.amount)).then_reply(format!(
                "{id}: {} = {}",
                c.amount,
                s.balance + c.amount
            ))
        })
    }
    fn apply(&self, s: &mut Balance, e: &Ev) -> Result<(), StageError> {
        match e {
            Ev::Deposited(x) => s.balance += x,
            Ev::Withdrew(x) => s.balance -= x,
        }
        s.events += 1;
        Ok(())
    }
    fn tags(&self, e: &Ev) -> Vec<String> {
        match e {
            Ev::Deposited(_) => vec!["deposits".into()],
            Ev::Withdrew(_) => vec!["withdrawals".into()],
        }
    }
    fn on_recovered(&self, pid: &str, s: &Balance, _seq: u64) -> Option<String> {
        (s.events > 0).then(|| format!("{pid} recovered at {}", s.balance))
    }
    fn on_persist_failed(&self, pid: &str, e: &StageError) -> Option<String> {
        Some(format!("{pid}: not persisted: {}", e.message()))
    }
    fn on_duplicate(&self, _s: &Balance, c: &Cmd) -> Option<String> {
        Some(format!("{}: duplicate #{}", c.account, c.pos))
    }
}

fn cmds(list: &[(u32, i64)]) -> Vec<Cmd> {
    list.iter()
        .enumerate()
        .map(|(i, &(account, amount))| Cmd {
            pos: i as u64,
            account,
            amount,
        })
        .collect()
}

fn dedup() -> EventSourcedSettings<Cmd> {
    EventSourcedSettings::default().command_position(|c: &Cmd| Some(c.pos))
}

async fn run_bank(
    journal: &Arc<dyn Journal>,
    commands: Vec<Cmd>,
    settings: EventSourcedSettings<Cmd>,
    bs: usize,
) -> Result<Vec<String>, StageError> {
    let m = Materializer::new().with_batch_size(bs);
    timed(
        Source::from_iter(commands)
            .via(event_sourced(Bank, Arc::clone(journal), settings))
            .run_with_on(Sink::collect(), &m)
            .expect("materializes"),
    )
    .await
}

fn events(journal: &Arc<dyn Journal>, pid: &str) -> Vec<(u64, Ev)> {
    journal
        .read(pid, 1, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, postcard::from_bytes(&e.payload).unwrap()))
        .collect()
}

#[tokio::test]
async fn commands_persist_their_events_and_reply_in_order() {
    for bs in [1, 3, 64] {
        let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
        let out = run_bank(
            &journal,
            cmds(&[(1, 10), (2, 5), (1, -4), (2, -9), (1, 3)]),
            EventSourcedSettings::default(),
            bs,
        )
        .await
        .expect("runs");
        assert_eq!(
            out,
            vec![
                "1: +10 = 10",
                "2: +5 = 5",
                "1: -4 = 6",
                "2: rejected -9",
                "1: +3 = 9"
            ],
            "batch size {bs}"
        );
        assert_eq!(
            events(&journal, "acct-1"),
            vec![
                (1, Ev::Deposited(10)),
                (2, Ev::Withdrew(4)),
                (3, Ev::Deposited(3))
            ]
        );
        assert_eq!(events(&journal, "acct-2"), vec![(1, Ev::Deposited(5))]);
    }
}

#[tokio::test]
async fn a_new_run_recovers_entities_from_their_events_and_snapshots() {
    for snapshot_every in [None, Some(2)] {
        let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
        let settings = |s: Option<u64>| match s {
            Some(n) => EventSourcedSettings::default().snapshot_every(n),
            None => EventSourcedSettings::default(),
        };
        run_bank(
            &journal,
            cmds(&[(1, 10), (1, 5), (1, -3)]),
            settings(snapshot_every),
            2,
        )
        .await
        .expect("runs");
        if snapshot_every.is_some() {
            let snap = journal
                .load_snapshot("acct-1")
                .unwrap()
                .expect("a snapshot");
            assert_eq!(snap.seq, 2);
            let state: Balance = postcard::from_bytes(&snap.state).unwrap();
            assert_eq!(
                state,
                Balance {
                    balance: 15,
                    events: 2
                }
            );
            // Recovery must not need the events the snapshot covers.
            journal.delete_up_to("acct-1", 2).unwrap();
        }
        let out = run_bank(
            &journal,
            cmds(&[(1, 1), (3, 2)]),
            settings(snapshot_every),
            2,
        )
        .await
        .expect("runs");
        assert_eq!(
            out,
            vec!["acct-1 recovered at 12", "1: +1 = 13", "3: +2 = 2"],
            "snapshots every {snapshot_every:?}"
        );
        assert_eq!(journal.highest_seq("acct-1").unwrap(), 4);
    }
}

#[tokio::test]
async fn replayed_commands_are_not_applied_twice() {
    let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
    let all = cmds(&[(1, 10), (2, 7), (1, -4), (2, 1), (1, 6)]);
    // The first run applied the first three commands (then crashed, say).
    run_bank(&journal, all[..3].to_vec(), dedup(), 2)
        .await
        .expect("runs");
    // The restart replays from an earlier position: two of the three again, then the rest.
    let out = run_bank(&journal, all[1..].to_vec(), dedup(), 2)
        .await
        .expect("runs");
    assert_eq!(
        out,
        vec![
            "acct-2 recovered at 7",
            "2: duplicate #1",
            "acct-1 recovered at 6",
            "1: duplicate #2",
            "2: +1 = 8",
            "1: +6 = 12"
        ]
    );
    assert_eq!(
        events(&journal, "acct-1"),
        vec![
            (1, Ev::Deposited(10)),
            (2, Ev::Withdrew(4)),
            (3, Ev::Deposited(6))
        ]
    );
    assert_eq!(journal.last_applied("acct-1").unwrap(), Some(4));
    // A rejected command (no event) still records its position.
    let out = run_bank(&journal, cmds(&[(9, -1)]), dedup(), 1)
        .await
        .expect("runs");
    assert_eq!(out, vec!["9: rejected -1"]);
    assert_eq!(journal.last_applied("acct-9").unwrap(), Some(0));
    let out = run_bank(&journal, cmds(&[(9, -1)]), dedup(), 1)
        .await
        .expect("runs");
    assert_eq!(out, vec!["9: duplicate #0"]);
}

#[tokio::test]
async fn a_corrupt_entry_fails_only_its_entity_naming_id_and_sequence() {
    let mem = Arc::new(InMemoryJournal::new());
    let journal: Arc<dyn Journal> = mem.clone();
    run_bank(
        &journal,
        cmds(&[(1, 10), (1, 5), (2, 3)]),
        EventSourcedSettings::default(),
        8,
    )
    .await
    .expect("runs");
    mem.corrupt("acct-1", 2, b"rotten".to_vec());
    let (dl, store) = DeadLetterSink::collector();
    let m = Materializer::new();
    let out = timed(
        Source::from_iter(cmds(&[(1, 1), (2, 1), (1, 2)]))
            .via(
                event_sourced(Bank, Arc::clone(&journal), EventSourcedSettings::default())
                    .with_supervision(Supervision::resume().with_dead_letters(dl)),
            )
            .run_with_on(Sink::collect(), &m)
            .expect("materializes"),
    )
    .await
    .expect("runs");
    assert_eq!(out, vec!["acct-2 recovered at 3", "2: +1 = 4"]);
    let letters: Vec<String> = store
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.error.message().to_owned())
        .collect();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(
        letters
            .iter()
            .all(|m| m.contains("entry 2 of persistence id 'acct-1' is corrupt")),
        "{letters:?}"
    );
    // Under stop the run fails with the same error.
    let err = run_bank(
        &journal,
        cmds(&[(1, 1)]),
        EventSourcedSettings::default(),
        1,
    )
    .await
    .expect_err("fails");
    assert!(
        err.to_string()
            .contains("entry 2 of persistence id 'acct-1'"),
        "{err}"
    );
}

/// A journal whose appends fail while `full` is set (a full disk).
struct Flaky {
    inner: InMemoryJournal,
    full: Mutex<bool>,
}

impl Journal for Flaky {
    fn append(&self, writes: &[AtomicWrite]) -> Result<(), JournalError> {
        if *self.full.lock().unwrap() {
            return Err(JournalError::Storage {
                path: "flaky".into(),
                operation: "append",
                message: "No space left on device".into(),
            });
        }
        self.inner.append(writes)
    }
    fn highest_seq(&self, pid: &str) -> Result<u64, JournalError> {
        self.inner.highest_seq(pid)
    }
    fn read(&self, pid: &str, from: u64, max: usize) -> Result<Vec<JournalEntry>, JournalError> {
        self.inner.read(pid, from, max)
    }
    fn save_snapshot(&self, pid: &str, seq: u64, state: &[u8]) -> Result<(), JournalError> {
        self.inner.save_snapshot(pid, seq, state)
    }
    fn load_snapshot(&self, pid: &str) -> Result<Option<SnapshotEntry>, JournalError> {
        self.inner.load_snapshot(pid)
    }
    fn last_applied(&self, pid: &str) -> Result<Option<u64>, JournalError> {
        self.inner.last_applied(pid)
    }
    fn events_by_tag(&self, t: &str, o: u64, m: usize) -> Result<Vec<TaggedEntry>, JournalError> {
        self.inner.events_by_tag(t, o, m)
    }
    fn delete_up_to(&self, pid: &str, seq: u64) -> Result<(), JournalError> {
        self.inner.delete_up_to(pid, seq)
    }
    fn watch(&self) -> &JournalWatch {
        self.inner.watch()
    }
}

#[tokio::test]
async fn a_failed_append_applies_nothing_and_fails_the_stage() {
    let flaky = Arc::new(Flaky {
        inner: InMemoryJournal::new(),
        full: Mutex::new(false),
    });
    let journal: Arc<dyn Journal> = flaky.clone();
    run_bank(
        &journal,
        cmds(&[(1, 10)]),
        EventSourcedSettings::default(),
        1,
    )
    .await
    .expect("runs");
    *flaky.full.lock().unwrap() = true;
    let err = run_bank(
        &journal,
        cmds(&[(1, 5), (1, 6)]),
        EventSourcedSettings::default(),
        8,
    )
    .await
    .expect_err("the append fails");
    assert!(err.to_string().contains("No space left on device"), "{err}");
    // Under resume the handler's side sees the failure as a reply and the stage goes on.
    let m = Materializer::new().with_batch_size(1);
    let out = timed(
        Source::from_iter(cmds(&[(1, 5), (1, -100)]))
            .via(
                event_sourced(Bank, Arc::clone(&journal), EventSourcedSettings::default())
                    .with_supervision(Supervision::resume()),
            )
            .run_with_on(Sink::collect(), &m)
            .expect("materializes"),
    )
    .await
    .expect("runs");
    assert_eq!(
        out,
        vec![
            // The first batch's replies (its recovery notice too) are not sent: nothing of it
            // was written, and the entity recovers again for the next command.
            "acct-1: not persisted: journal at flaky: append failed: No space left on device",
            "acct-1 recovered at 10",
            "1: rejected -100"
        ]
    );
    *flaky.full.lock().unwrap() = false;
    let out = run_bank(
        &journal,
        cmds(&[(1, 1)]),
        EventSourcedSettings::default(),
        1,
    )
    .await
    .expect("runs");
    assert_eq!(out, vec!["acct-1 recovered at 10", "1: +1 = 11"]);
}

#[tokio::test]
async fn queries_read_by_persistence_id_and_by_tag() {
    let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
    run_bank(
        &journal,
        cmds(&[(1, 10), (2, 5), (1, -4), (2, 2)]),
        EventSourcedSettings::default(),
        2,
    )
    .await
    .expect("runs");
    let by_pid = timed(
        events_by_persistence_id(Arc::clone(&journal), "acct-1", 2, Liveness::Current)
            .map(|e| (e.seq, postcard::from_bytes::<Ev>(&e.payload).unwrap()))
            .run_with(Sink::collect())
            .expect("materializes"),
    )
    .await
    .expect("runs");
    assert_eq!(by_pid, vec![(2, Ev::Withdrew(4))]);
    let deposits = timed(
        events_by_tag(Arc::clone(&journal), "deposits", 0, Liveness::Current)
            .map(|t| (t.entry.pid, t.entry.seq))
            .run_with(Sink::collect())
            .expect("materializes"),
    )
    .await
    .expect("runs");
    assert_eq!(
        deposits,
        vec![
            ("acct-1".to_owned(), 1),
            ("acct-2".to_owned(), 1),
            ("acct-2".to_owned(), 2)
        ]
    );
}

#[tokio::test]
async fn a_live_query_follows_new_events() {
    let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
    run_bank(
        &journal,
        cmds(&[(1, 1)]),
        EventSourcedSettings::default(),
        1,
    )
    .await
    .expect("runs");
    let live = events_by_tag(Arc::clone(&journal), "deposits", 0, Liveness::Live)
        .map(|t| (t.entry.pid, t.entry.seq))
        .take(3)
        .run_with(Sink::collect())
        .expect("materializes");
    let writer = {
        let journal = Arc::clone(&journal);
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            run_bank(
                &journal,
                cmds(&[(2, 1), (1, 1)]),
                EventSourcedSettings::default(),
                1,
            )
            .await
            .expect("runs");
        }
    };
    let (got, ()) = timed(futures::future::join(live, writer)).await;
    assert_eq!(
        got.expect("completes after take"),
        vec![
            ("acct-1".to_owned(), 1),
            ("acct-2".to_owned(), 1),
            ("acct-1".to_owned(), 2)
        ]
    );
}

#[tokio::test]
async fn sharded_over_two_subtasks_each_entity_keeps_its_order() {
    let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
    let list: Vec<(u32, i64)> = (0..200)
        .map(|i| ((i % 5) as u32, i64::from(i % 9) - 2))
        .collect();
    let out = run_bank(&journal, cmds(&list), dedup().parallelism(2), 16)
        .await
        .expect("runs");
    // The same replies per account as one subtask gives, in each account's order.
    let one: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
    let want = run_bank(&one, cmds(&list), dedup(), 16)
        .await
        .expect("runs");
    let per_account = |v: &[String]| {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in v {
            let (acct, _) = r.split_once(':').unwrap();
            m.entry(acct.to_owned()).or_default().push(r.clone());
        }
        m
    };
    assert_eq!(per_account(&out), per_account(&want));
    for a in 0..5 {
        let pid = format!("acct-{a}");
        assert_eq!(events(&journal, &pid), events(&one, &pid), "{pid}");
    }
}

#[tokio::test]
async fn entities_beyond_the_bound_are_dropped_and_recovered_from_the_journal() {
    let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
    let list: Vec<(u32, i64)> = vec![(1, 1), (2, 2), (3, 3), (1, 4), (2, 5), (3, 6)];
    let out = run_bank(
        &journal,
        cmds(&list),
        EventSourcedSettings::default().max_entities(1),
        1,
    )
    .await
    .expect("runs");
    assert_eq!(
        out,
        vec![
            "1: +1 = 1",
            "2: +2 = 2",
            "3: +3 = 3",
            "acct-1 recovered at 1",
            "1: +4 = 5",
            "acct-2 recovered at 2",
            "2: +5 = 7",
            "acct-3 recovered at 3",
            "3: +6 = 9"
        ]
    );
}

/// Closes an account (stops the entity) on a zero amount.
struct Closing;

impl EventSourced for Closing {
    type Command = Cmd;
    type Event = Ev;
    type State = Balance;
    type Reply = String;
    fn persistence_id(&self, c: &Cmd) -> Result<String, StageError> {
        Bank.persistence_id(c)
    }
    fn command(&self, s: &Balance, c: Cmd) -> Result<Effect<Ev, String>, StageError> {
        if c.amount == 0 {
            return Ok(Effect::reply(format!("{} closed at {}", c.account, s.balance)).then_stop());
        }
        Bank.command(s, c)
    }
    fn apply(&self, s: &mut Balance, e: &Ev) -> Result<(), StageError> {
        Bank.apply(s, e)
    }
    fn on_recovered(&self, pid: &str, s: &Balance, seq: u64) -> Option<String> {
        Bank.on_recovered(pid, s, seq)
    }
}

#[tokio::test]
async fn a_stop_effect_drops_the_entity_until_its_next_command() {
    let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
    let out = timed(
        Source::from_iter(cmds(&[(1, 4), (1, 0), (1, 1)]))
            .via(event_sourced(
                Closing,
                Arc::clone(&journal),
                EventSourcedSettings::default(),
            ))
            .run_with(Sink::collect())
            .expect("materializes"),
    )
    .await
    .expect("runs");
    assert_eq!(
        out,
        vec![
            "1: +4 = 4",
            "1 closed at 4",
            "acct-1 recovered at 4",
            "1: +1 = 5"
        ]
    );
}

/// Panics applying a deposit of 13.
struct Unlucky;

impl EventSourced for Unlucky {
    type Command = Cmd;
    type Event = Ev;
    type State = Balance;
    type Reply = String;
    fn persistence_id(&self, c: &Cmd) -> Result<String, StageError> {
        Bank.persistence_id(c)
    }
    fn command(&self, s: &Balance, c: Cmd) -> Result<Effect<Ev, String>, StageError> {
        Bank.command(s, c)
    }
    fn apply(&self, s: &mut Balance, e: &Ev) -> Result<(), StageError> {
        s.events += 1;
        assert!(!matches!(e, Ev::Deposited(13)), "unlucky");
        Bank.apply(s, e)?;
        s.events -= 1;
        Ok(())
    }
    fn on_recovered(&self, pid: &str, s: &Balance, seq: u64) -> Option<String> {
        Bank.on_recovered(pid, s, seq)
    }
}

#[tokio::test]
async fn a_panicking_event_handler_leaves_its_entity_exactly_as_persisted() {
    let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
    let out = timed(
        Source::from_iter(cmds(&[(1, 5), (1, 13), (1, 2)]))
            .via(
                event_sourced(
                    Unlucky,
                    Arc::clone(&journal),
                    EventSourcedSettings::default(),
                )
                .with_supervision(Supervision::resume()),
            )
            .run_with(Sink::collect())
            .expect("materializes"),
    )
    .await
    .expect("runs");
    assert_eq!(out, vec!["1: +5 = 5", "acct-1 recovered at 5", "1: +2 = 7"]);
    assert_eq!(
        events(&journal, "acct-1"),
        vec![(1, Ev::Deposited(5)), (2, Ev::Deposited(2))]
    );
}
