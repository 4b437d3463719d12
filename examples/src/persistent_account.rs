//! An event-sourced bank account: deposits and withdrawals persist events to a journal, a
//! withdrawal beyond the balance is rejected without an event, and a second run over the same
//! journal recovers each account's balance from its events before handling new commands.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use weir::operators::persistence::{Effect, EventSourced, EventSourcedSettings, event_sourced};
use weir::prelude::*;
use weir::state::journal::{InMemoryJournal, Journal};

/// `(account, amount)`: a deposit, or a withdrawal when negative.
pub type Command = (&'static str, i64);

/// What an account persists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Event {
    /// Money in.
    Deposited(i64),
    /// Money out.
    Withdrew(i64),
}

/// The accounts.
pub struct Bank;

impl EventSourced for Bank {
    type Command = Command;
    type Event = Event;
    type State = i64;
    type Reply = String;
    fn persistence_id(&self, c: &Command) -> Result<String, StageError> {
        Ok(c.0.to_owned())
    }
    fn command(
        &self,
        balance: &i64,
        (acct, x): Command,
    ) -> Result<Effect<Event, String>, StageError> {
        Ok(if x >= 0 {
            Effect::persist(Event::Deposited(x))
                .then_reply(format!("{acct} +{x} = {}", balance + x))
        } else if balance + x < 0 {
            Effect::reply(format!("{acct} {x} rejected (balance {balance})"))
        } else {
            Effect::persist(Event::Withdrew(-x)).then_reply(format!("{acct} {x} = {}", balance + x))
        })
    }
    fn apply(&self, balance: &mut i64, e: &Event) -> Result<(), StageError> {
        match e {
            Event::Deposited(x) => *balance += x,
            Event::Withdrew(x) => *balance -= x,
        }
        Ok(())
    }
    fn on_recovered(&self, pid: &str, balance: &i64, seq: u64) -> Option<String> {
        (seq > 0).then(|| format!("{pid} recovered with {balance} after {seq} events"))
    }
}

async fn run_once(
    journal: &Arc<dyn Journal>,
    cmds: Vec<Command>,
) -> Result<Vec<String>, crate::ExampleError> {
    Ok(Source::from_iter(cmds)
        .via(event_sourced(
            Bank,
            Arc::clone(journal),
            EventSourcedSettings::default(),
        ))
        .run_with(Sink::collect())?
        .await?)
}

/// Two runs over one journal: the replies of each.
pub async fn run() -> Result<(Vec<String>, Vec<String>), crate::ExampleError> {
    let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
    let first = run_once(
        &journal,
        vec![("alice", 100), ("bob", 20), ("alice", -30), ("bob", -50)],
    )
    .await?;
    let second = run_once(&journal, vec![("bob", 5), ("alice", -70)]).await?;
    Ok((first, second))
}
