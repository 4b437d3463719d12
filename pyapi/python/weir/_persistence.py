"""Event-sourced entities: ``weir.EventSourcedEntity``, ``weir.Effect`` and ``weir.Journal``.

An entity class describes every entity of a ``Flow.event_sourced`` stage: ``persistence_id``
names the entity a command is for, ``on_command(state, command)`` returns an :class:`Effect`
(events to persist, a reply to emit, a snapshot, a stop), ``on_event(state, event)`` returns the
state after an event. The stage is the Rust one: the events of a batch of commands are appended
to the journal atomically before the batch's replies go downstream, an entity is recovered on
its first command (latest snapshot, then the later events), and a command whose ``position``
is at or below its entity's last applied one (a replay after a restart) is not applied again.
Events and snapshots are stored as JSON text (``json.dumps``), never pickle.
"""

from typing import Any, List, Optional

from . import _native

Journal = _native.Journal


class Effect:
    """What handling one command does: events to persist, a reply, a snapshot, a stop."""

    __slots__ = ("events", "reply_value", "snapshot", "stop")

    def __init__(self, events: Optional[List[Any]] = None) -> None:
        self.events: List[Any] = list(events or [])
        self.reply_value: Any = None
        self.snapshot = False
        self.stop = False

    @staticmethod
    def none() -> "Effect":
        """No event and no reply."""
        return Effect()

    @staticmethod
    def persist(*events: Any) -> "Effect":
        """Persists ``events`` (JSON-serializable values), atomically and in order."""
        return Effect(list(events))

    @staticmethod
    def reply(value: Any) -> "Effect":
        """Only a reply (emitted downstream)."""
        return Effect().then_reply(value)

    def then_reply(self, value: Any) -> "Effect":
        """This effect, emitting ``value`` downstream once its events are persisted."""
        self.reply_value = value
        return self

    def then_snapshot(self) -> "Effect":
        """This effect, saving a snapshot of the state after its events."""
        self.snapshot = True
        return self

    def then_stop(self) -> "Effect":
        """This effect, dropping the entity from memory after it (its next command recovers it)."""
        self.stop = True
        return self


class EventSourcedEntity:
    """The behaviour of the entities of a ``Flow.event_sourced`` stage (subclass it).

    Required: ``persistence_id(command) -> str``, ``on_command(state, command) -> Effect``
    and ``on_event(state, event) -> state``. Optional: ``initial_state()`` (the state of an
    entity without events, default ``None``), ``tags(event) -> list[str]`` (for
    ``Source.events_by_tag``), and replies emitted by ``on_recovered(pid, state, seq)``,
    ``on_duplicate(state, command)`` and ``on_persist_failed(pid, error)`` (return ``None``
    for no reply)."""

    def persistence_id(self, command: Any) -> str:
        """The persistence id `command` is for."""
        raise NotImplementedError("EventSourcedEntity.persistence_id")

    def initial_state(self) -> Any:
        """The state of an entity without events."""
        return None

    def on_command(self, state: Any, command: Any) -> Effect:
        """What handling `command` against `state` does."""
        raise NotImplementedError("EventSourcedEntity.on_command")

    def on_event(self, state: Any, event: Any) -> Any:
        """The state after `event`."""
        raise NotImplementedError("EventSourcedEntity.on_event")

    def on_recovered(self, pid: str, state: Any, seq: int) -> Any:
        """A reply when an entity is recovered (``seq`` 0: it has no events), or ``None``."""
        return None

    def on_duplicate(self, state: Any, command: Any) -> Any:
        """A reply to a command applied before a restart (not applied again), or ``None``."""
        return None

    def on_persist_failed(self, pid: str, error: str) -> Any:
        """A reply to a command whose events the journal refused, or ``None``."""
        return None
