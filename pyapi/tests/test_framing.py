"""weir.Framing: exact frames, errors naming stage and byte offset, completion, cancellation,
and round trips of random frames over random chunkings."""

import json
import random
import struct

import pytest

import weir
from weir import Flow, Framing, Sink, Source

from helpers import Boom


def frames(flow, chunks):
    """What reached the sink, and the failure (or None)."""
    seen = []
    try:
        Source.from_iter(chunks).via(flow).run_with(Sink.for_each(seen.append))
    except weir.StageFailed as e:
        return seen, e
    return seen, None


def rechunk(data, rng):
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 9)
        out.append(data[i : i + n])
        i += n
    return out


def test_delimiter_frames_then_completes():
    got, err = frames(Framing.delimiter(b"\r\n", 8), [b"a\r", b"\nbc\r\n\r\n", bytearray(b"d\r\n")])
    assert (got, err) == ([b"a", b"bc", b"", b"d"], None)
    assert all(type(f) is bytes for f in got)


def test_delimiter_errors_name_stage_and_offset():
    got, err = frames(Framing.delimiter(b"\n", 3), [b"ab\ncd\n", b"efgh"])
    assert got == [b"ab", b"cd"]
    assert str(err) == (
        "stage 'delimiter_framing#2' failed: frame starting at byte 6 is 4 bytes long, "
        "more than the maximum of 3"
    )
    assert err.stage_name == "delimiter_framing"
    got, err = frames(Framing.delimiter(b"\n", 8), [b"x\ny"])
    assert got == [b"x"]
    assert "stream completed inside a frame starting at byte 2 (1 bytes buffered)" in str(err)
    got, err = frames(Framing.delimiter(b"\n", 8, allow_truncation=True), [b"x\ny"])
    assert (got, err) == ([b"x", b"y"], None)
    with pytest.raises(ValueError, match="non-empty delimiter"):
        Framing.delimiter(b"", 8)


def test_non_bytes_elements_fail_naming_the_element():
    got, err = frames(Framing.delimiter(b"\n", 8), [b"a\n", "text\n"])
    assert got == [b"a"]
    assert "framing takes bytes or bytearray elements, not str" in str(err)
    assert "'text\\n'" in str(err)


def test_length_field_layouts():
    for width in (1, 2, 4, 8):
        for order, fmt in (("big", ">"), ("little", "<")):
            code = {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
            want = []
            data = b""
            for payload in (b"abc", b"", b"z"):
                frame = b"\xee" + struct.pack(fmt + code, len(payload)) + payload
                want.append(frame)
                data += frame
            flow = Framing.length_field(width, 64, field_offset=1, byte_order=order)
            got, err = frames(flow, rechunk(data, random.Random(width)))
            assert (got, err) == (want, None), (width, order)
    inclusive = Framing.length_field(2, 16, length_includes_header=True, strip_header=True)
    assert frames(inclusive, [b"\x00\x05abc\x00\x02"]) == ([b"abc", b""], None)


def test_length_field_rejects_too_long_before_buffering_and_bad_parameters():
    got, err = frames(Framing.length_field(4, 1024), [b"\x00\x00\x00\x02hi", b"\x80\x00\x00\x00"])
    assert got == [b"\x00\x00\x00\x02hi"]
    assert "frame starting at byte 6 is 2147483652 bytes long, more than the maximum of 1024" in str(err)
    with pytest.raises(ValueError, match="width must be 1, 2, 4 or 8 bytes, not 3"):
        Framing.length_field(3, 10)
    with pytest.raises(ValueError, match="byte_order"):
        Framing.length_field(4, 10, byte_order="middle")
    with pytest.raises(ValueError, match="shorter than the 4-byte header"):
        Framing.length_field(4, 3)


def test_json_objects_and_errors():
    data = [b'[{"k": "a}b"}', b', {"n": {"m": "\\"}"}}]']
    got, err = frames(Framing.json(), data)
    assert err is None
    assert [json.loads(x) for x in got] == [{"k": "a}b"}, {"n": {"m": '"}'}}]
    got, err = frames(Framing.json(8), [b'{"a":1} {"b":', b"123456}"])
    assert got == [b'{"a":1}']
    assert "frame starting at byte 8 is 9 bytes long, more than the maximum of 8" in str(err)
    got, err = frames(Framing.json(), [b"{} x"])
    assert got == [b"{}"]
    assert "unexpected byte 0x78 ('x') at byte 3, outside any JSON object" in str(err)


def test_simple_framing_protocol_round_trip_and_limit():
    proto = Framing.simple_framing_protocol(16)
    transport = Flow.create().flat_map(lambda c: [c[i : i + 3] for i in range(0, len(c), 3)])
    msgs = [b"hello", b"", b"weir streams"]
    assert frames(proto.join(transport), msgs) == (msgs, None)
    got, err = frames(Framing.simple_framing_protocol(4).join(Flow.create()), [b"abcd", b"abcde"])
    assert got == [b"abcd"]
    assert "message 1 is 5 bytes long, more than the maximum of 4" in str(err)
    assert err.stage_name == "length_prefix"


def test_delimiter_protocol_round_trip():
    proto = Framing.delimiter_protocol(b"\n", 32)
    assert frames(proto.join(Flow.create()), [b"a", b"bc", b""]) == ([b"a", b"bc", b""], None)


def test_upstream_failure_and_cancellation():
    def chunks():
        yield b"a\nb"
        raise Boom("link down")

    class Again:
        def __iter__(self):
            return chunks()

    got, err = frames(Framing.delimiter(b"\n", 8), Again())
    assert got == [b"a"]
    assert isinstance(err.__cause__, Boom)
    out = Source.repeat(b"x;").via(Framing.delimiter(b";", 4)).take(3).run_with(Sink.collect())
    assert out == [b"x", b"x", b"x"]


@pytest.mark.parametrize("seed", range(12))
def test_round_trips_over_random_chunkings(seed):
    rng = random.Random(seed)
    msgs = [bytes(rng.randrange(256) for _ in range(rng.randrange(40))) for _ in range(rng.randrange(12))]
    # length field, decoded without header
    data = b"".join(struct.pack(">H", len(m)) + m for m in msgs)
    flow = Framing.length_field(2, 64, strip_header=True)
    assert frames(flow, rechunk(data, rng)) == (msgs, None)
    # the protocol over a transport that re-chunks everything it is given
    transport = Flow.create().fold(b"", lambda a, c: a + c).flat_map(lambda all_: rechunk(all_, rng))
    assert frames(Framing.simple_framing_protocol(64).join(transport), msgs) == (msgs, None)
    # delimiter frames (the delimiter removed from the payloads)
    plain = [m.replace(b"|", b"") for m in msgs]
    data = b"".join(m + b"|#" for m in plain)
    assert frames(Framing.delimiter(b"|#", 64), rechunk(data, rng)) == (plain, None)
    # JSON objects with braces, quotes and backslashes inside strings
    objs = [{"k" + str(i): "".join(rng.choice('{}[]"\\ab') for _ in range(rng.randrange(6)))} for i in range(len(msgs))]
    data = ("[" + ",\n".join(json.dumps(o) for o in objs) + "]").encode()
    got, err = frames(Framing.json(), rechunk(data, rng))
    assert err is None
    assert [json.loads(x) for x in got] == objs
