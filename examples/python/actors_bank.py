"""A bank account actor from Python: closed until it opens (``become``), what arrives before is
stashed and handled in order once it opens; balances asked from outside the graph (``ask``); the
same account again with its hooks in an interpreter pool's worker (``pool=``).

Run: python examples/python/actors_bank.py
"""

from dataclasses import dataclass
from typing import Any

import weir


@dataclass(frozen=True)
class Deposit:
    amount: int


@dataclass(frozen=True)
class Withdraw:
    amount: int


@dataclass(frozen=True)
class Open:
    pass


@dataclass(frozen=True)
class GetBalance:
    pass


@dataclass(frozen=True)
class Close:
    pass


class Account(weir.Actor):
    def pre_start(self, ctx: weir.ActorContext) -> None:
        self.balance = 0
        ctx.become(self.closed)

    def closed(self, ctx: weir.ActorContext, msg: Any) -> None:
        if isinstance(msg, Open):
            ctx.unbecome()
            ctx.unstash_all()
            ctx.emit("opened")
        else:
            ctx.stash()

    def on_deposit(self, ctx: weir.ActorContext, d: Deposit) -> None:
        self.balance += d.amount
        ctx.emit(self.balance)

    def on_withdraw(self, ctx: weir.ActorContext, w: Withdraw) -> None:
        if w.amount > self.balance:
            ctx.emit(f"refused {w.amount}")
            return
        self.balance -= w.amount
        ctx.emit(self.balance)

    def on_get_balance(self, ctx: weir.ActorContext, _: GetBalance) -> None:
        ctx.reply(self.balance)

    def on_close(self, ctx: weir.ActorContext, _: Close) -> None:
        ctx.stop()


def run(pool: Any = None) -> Any:
    """The account's statement, with its hooks inline or in an interpreter pool's worker."""
    handle = weir.Source.actor(Account, pool=pool).to(weir.Sink.collect(), keep="both").start()
    account, statement = handle.materialized
    for msg in [Deposit(100), Withdraw(30), Open(), Withdraw(500), Deposit(25)]:
        account.tell(msg)
    print("balance asked:", account.ask(GetBalance(), 5.0))
    account.tell(Close())
    handle.wait()
    return statement.result()


def main() -> None:
    inline = run()
    print("bank:", inline)
    with weir.InterpreterPool(1) as pool:
        pooled = run(pool)
    # The same account in a pool worker: the same statement.
    assert pooled == inline, (pooled, inline)
    print("bank in the pool:", pooled)


if __name__ == "__main__":
    main()
