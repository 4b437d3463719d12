//! Bank account with become/stash: while an audit is open the account stashes every
//! transaction, and replays them in order when the audit closes.

use weir::operators::actor::{Actor, Ctx, Props};
use weir::prelude::*;

/// What the account is sent.
#[derive(Debug, Clone)]
pub enum Txn {
    /// Adds to the balance.
    Deposit(u64),
    /// Takes from the balance; refused when it would go below zero.
    Withdraw(u64),
    /// Opens an audit: transactions wait until it closes.
    OpenAudit,
    /// Closes the audit and replays what waited.
    CloseAudit,
}

/// The account's balance.
#[derive(Default)]
struct Account {
    balance: u64,
}

impl Actor for Account {
    type Msg = Txn;
    type Out = String;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, txn: Txn) -> Result<(), StageError> {
        match txn {
            Txn::Deposit(x) => {
                self.balance += x;
                ctx.emit(format!("deposit {x}: balance {}", self.balance));
            }
            Txn::Withdraw(x) if x > self.balance => {
                ctx.emit(format!("withdraw {x}: refused, balance {}", self.balance));
            }
            Txn::Withdraw(x) => {
                self.balance -= x;
                ctx.emit(format!("withdraw {x}: balance {}", self.balance));
            }
            Txn::OpenAudit => {
                ctx.emit(format!("audit opened at balance {}", self.balance));
                ctx.become_(|_a: &mut Account, ctx, txn| match txn {
                    Txn::CloseAudit => {
                        ctx.emit(format!("audit closed, replaying {}", ctx.stashed()));
                        ctx.unbecome();
                        ctx.unstash_all();
                        Ok(())
                    }
                    other => ctx.stash(other),
                });
            }
            Txn::CloseAudit => ctx.emit("no audit open".to_owned()),
        }
        Ok(())
    }
}

/// Runs a day of transactions with an audit in the middle.
pub async fn run() -> Result<Vec<String>, crate::ExampleError> {
    let day = vec![
        Txn::Deposit(100),
        Txn::OpenAudit,
        Txn::Withdraw(30),
        Txn::Deposit(5),
        Txn::Withdraw(500),
        Txn::CloseAudit,
        Txn::Withdraw(20),
        Txn::CloseAudit,
    ];
    let out = Source::from_iter(day)
        .via(Flow::actor(Props::<Account>::default_of()))
        .run_with(Sink::collect())?
        .await?;
    Ok(out)
}
