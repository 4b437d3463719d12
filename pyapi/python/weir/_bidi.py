"""Bidirectional flows (:class:`BidiFlow`) and byte framing (:class:`Framing`)."""

from __future__ import annotations

from typing import Any, Callable, Literal

from . import _native
from ._dsl import Flow, Keep, _Meta


class BidiFlow:
    """Two flows in opposite directions: ``top`` (I1 -> O1, e.g. encode what goes out) and
    ``bottom`` (I2 -> O2, e.g. decode what comes back). Stack bidis with :meth:`atop`, close one
    with a flow with :meth:`join` (the result is a :class:`weir.Flow` I1 -> O2).

    ::

           +------------------+
     I1 ~> |  top:    I1 ~> O1 | ~> O1
     O2 <~ |  bottom: O2 <~ I2 | <~ I2
           +------------------+
    """

    __slots__ = ("_n", "_meta")

    def __init__(self, native: _native.Bidi, meta: _Meta | None = None) -> None:
        self._n = native
        self._meta = meta or _Meta()

    @staticmethod
    def from_flows(top: Flow[Any, Any], bottom: Flow[Any, Any], keep: Keep = "none") -> "BidiFlow":
        """A bidi of ``top`` and ``bottom``; ``keep`` picks the materialized value (``left`` is
        the top flow's)."""
        return BidiFlow(_native.bidi_from_flows(top._n, bottom._n, keep), top._meta | bottom._meta)

    @staticmethod
    def from_functions(top: Callable[[Any], Any], bottom: Callable[[Any], Any]) -> "BidiFlow":
        """A bidi mapping each element with ``top`` on the way out and ``bottom`` on the way
        back.

        Emits when: an element arrives on either side (its image).
        Backpressures when: that side's downstream backpressures.
        Completes when: each side's upstream completes.
        Cancels when: each side's downstream cancels.
        Fails when: a function raises (that side fails), or upstream fails."""
        return BidiFlow.from_flows(Flow.create().map(top), Flow.create().map(bottom))

    def atop(self, other: "BidiFlow", keep: Keep = "left") -> "BidiFlow":
        """Stacks ``other`` under this bidi: going out, this top then ``other``'s top; coming
        back, ``other``'s bottom then this bottom."""
        return BidiFlow(self._n.atop(other._n, keep), self._meta | other._meta)

    def join(self, flow: Flow[Any, Any], keep: Keep = "left") -> Flow[Any, Any]:
        """Closes the bidi with ``flow`` from its top output back to its bottom input: a flow
        from the top input to the bottom output."""
        return Flow(self._n.join(flow._n, keep), self._meta | flow._meta)

    def reversed(self) -> "BidiFlow":
        """The same bidi seen from the other side (bottom becomes top)."""
        return BidiFlow(self._n.reversed(), self._meta)

    def to_mermaid(self) -> str:
        """The blueprint as a Mermaid flowchart."""
        return self._n.to_mermaid()

    def __repr__(self) -> str:
        return f"BidiFlow({self._n.stage_count()} stages)"


class Framing:
    """Byte framing: flows from chunks of ``bytes`` (any sizes) to frames, and framing
    protocols as :class:`BidiFlow` s. Every decoder emits a frame as soon as its last byte
    arrived, buffers at most one frame, and fails with ``StageFailed`` naming the stage and the
    byte offset where the bad frame starts. Invalid parameters raise ``ValueError`` here.

    Emits when: a frame is complete.
    Backpressures when: downstream backpressures.
    Completes when: upstream completes and no partial frame is left.
    Cancels when: downstream cancels.
    Fails when: a frame is too long or malformed, the stream ends inside a frame, an element is
    not ``bytes``/``bytearray``, or upstream fails."""

    @staticmethod
    def delimiter(delimiter: bytes, max_frame_length: int, allow_truncation: bool = False) -> Flow[bytes, bytes]:
        """Frames between occurrences of ``delimiter`` (not included); bytes after the last
        delimiter are a final frame with ``allow_truncation``, else an error."""
        return Flow(_native.framing_delimiter(delimiter, max_frame_length, allow_truncation))

    @staticmethod
    def length_field(
        field_length: int,
        max_frame_length: int,
        *,
        field_offset: int = 0,
        byte_order: Literal["big", "little"] = "big",
        length_includes_header: bool = False,
        strip_header: bool = False,
    ) -> Flow[bytes, bytes]:
        """Frames announced by a ``field_length``-byte (1, 2, 4 or 8) length ``field_offset``
        bytes into each frame, ``byte_order`` ``"big"`` or ``"little"``; the length counts the
        bytes after the header unless ``length_includes_header``. Frames are emitted whole
        (header included) unless ``strip_header``. A declared length above
        ``max_frame_length`` fails as soon as the header arrived, before the frame is buffered."""
        return Flow(
            _native.framing_length_field(
                field_length, max_frame_length, field_offset, byte_order, length_includes_header, strip_header
            )
        )

    @staticmethod
    def length_prefix(field_length: int, max_message_length: int, byte_order: Literal["big", "little"] = "big") -> Flow[bytes, bytes]:
        """Prefixes each message with its length (the encoder matching :meth:`length_field`
        with offset 0)."""
        return Flow(_native.framing_length_prefix(field_length, max_message_length, byte_order))

    @staticmethod
    def json(max_object_length: int = 1 << 20) -> Flow[bytes, bytes]:
        """The top-level JSON objects of a byte stream (concatenated, separated by whitespace or
        commas, or inside one top-level array), each as its exact bytes. Only brace depth is
        tracked (braces inside strings and escaped quotes are skipped)."""
        return Flow(_native.framing_json(max_object_length))

    @staticmethod
    def simple_framing_protocol(max_message_length: int) -> BidiFlow:
        """Top: messages to frames with a 4-byte big-endian length prefix; bottom: bytes to
        messages (prefix removed)."""
        return BidiFlow(_native.framing_simple_protocol(max_message_length))

    @staticmethod
    def delimiter_protocol(delimiter: bytes, max_frame_length: int) -> BidiFlow:
        """Top: ``delimiter`` appended to each message; bottom: bytes split at ``delimiter``."""
        return BidiFlow(_native.framing_delimiter_protocol(delimiter, max_frame_length))
