"""An event-sourced bank account from Python: deposits and withdrawals persist JSON events to a
journal, an overdraft is rejected without an event, and a second run over the same journal
recovers every balance before handling new commands; a replayed command (same position) is
not applied twice.

Run: python examples/python/persistent_account.py
"""

from typing import Any, Dict, List, Optional

import weir


class Account(weir.EventSourcedEntity):
    """One bank account per persistence id."""

    def persistence_id(self, command: Any) -> str:
        return str(command["account"])

    def initial_state(self) -> Dict[str, int]:
        return {"balance": 0}

    def on_command(self, state: Any, command: Any) -> weir.Effect:
        amount = int(command["amount"])
        balance = int(state["balance"])
        if balance + amount < 0:
            return weir.Effect.reply(f"{command['account']}: {amount} rejected (balance {balance})")
        return weir.Effect.persist({"amount": amount}).then_reply(f"{command['account']}: {balance + amount}")

    def on_event(self, state: Any, event: Any) -> Dict[str, int]:
        return {"balance": int(state["balance"]) + int(event["amount"])}

    def on_recovered(self, pid: str, state: Any, seq: int) -> Optional[str]:
        return f"{pid} recovered with {state['balance']} after {seq} events" if seq else None

    def on_duplicate(self, state: Any, command: Any) -> Optional[str]:
        return f"{command['account']}: already applied"


def run(journal: weir.Journal, commands: List[Dict[str, Any]]) -> List[str]:
    """The replies of one run over `journal`."""
    flow = weir.Flow.event_sourced(Account, journal, position=lambda c: int(c["pos"]))
    replies: List[str] = weir.Source.from_iter(commands).via(flow).run_with(weir.Sink.collect())
    return replies


def main() -> None:
    journal = weir.Journal.memory()
    first = [
        {"pos": 0, "account": "alice", "amount": 100},
        {"pos": 1, "account": "bob", "amount": 20},
        {"pos": 2, "account": "alice", "amount": -30},
        {"pos": 3, "account": "bob", "amount": -50},
    ]
    for r in run(journal, first):
        print(r)
    # A restart replays the last command, then goes on.
    second = [first[3], {"pos": 4, "account": "bob", "amount": 5}]
    for r in run(journal, second):
        print(r)
    print("alice's events:", journal.events("alice"))


if __name__ == "__main__":
    main()
