"""TCP and stdio connectors from Python over loopback and pipes: lines and length-prefixed
frames both ways, JSON, a server taking a Python client, and stdout into a closed pipe."""

import json
import os
import socket
import struct
import subprocess
import sys
import threading

import pytest

import weir


def _serve_once(payload: bytes):
    """A one-shot server sending `payload` to its first client; its port and the thread."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def run():
        conn, _ = srv.accept()
        with conn:
            conn.sendall(payload)
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return port, t


def test_a_client_source_reads_lines_and_json_until_the_peer_closes():
    port, t = _serve_once(b"a\nbb\nccc\n")
    out = weir.Source.from_tcp(f"127.0.0.1:{port}").run_with(weir.Sink.collect())
    t.join(5)
    assert out == ["a", "bb", "ccc"]
    port, t = _serve_once(b'{"k": 1}\n{"k": [2, 3]}\n')
    out = weir.Source.from_tcp(f"127.0.0.1:{port}", json=True).run_with(weir.Sink.collect())
    t.join(5)
    assert out == [{"k": 1}, {"k": [2, 3]}]


def test_length_prefixed_frames_arrive_as_bytes():
    frames = [b"", b"x", b"\x00\xffbinary"]
    port, t = _serve_once(b"".join(struct.pack(">I", len(f)) + f for f in frames))
    out = weir.Source.from_tcp(f"127.0.0.1:{port}", framing="length").run_with(weir.Sink.collect())
    t.join(5)
    assert out == frames


def test_a_server_source_takes_a_python_client():
    graph = weir.Source.from_tcp("127.0.0.1:0", mode="bind").take(3).to(weir.Sink.collect(), "both")
    handle = graph.start()
    addr, _ = handle.materialized
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as c:
        c.sendall(b"one\ntwo\nthree\nfour\n")
        _, result = handle.wait(10)
    assert result == ["one", "two", "three"]


def test_a_sink_writes_frames_to_a_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    got = []

    def run():
        conn, _ = srv.accept()
        with conn:
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
            got.append(data)
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    weir.Source.from_iter([{"a": 1}, {"b": [2]}]).run_with(weir.Sink.to_tcp(f"127.0.0.1:{port}", json=True))
    t.join(5)
    assert [json.loads(line) for line in got[0].decode().splitlines()] == [{"a": 1}, {"b": [2]}]


def test_an_oversized_frame_fails_naming_the_peer_and_offset():
    port, t = _serve_once(struct.pack(">I", 0xFFFFFFFF) + b"x")
    with pytest.raises(weir.StageFailed) as e:
        weir.Source.from_tcp(f"127.0.0.1:{port}", framing="length", max_frame_length=1024).run_with(weir.Sink.collect())
    t.join(5)
    assert "bad frame from 127.0.0.1:" in str(e.value) and "frame starting at byte 0" in str(e.value), str(e.value)


SCRIPT = """
import weir
weir.Source.stdin().map(lambda s: s.upper()).run_with(weir.Sink.stdout())
"""


def test_stdin_to_stdout_and_a_closed_pipe_is_not_a_crash(tmp_path):
    script = tmp_path / "upper.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    r = subprocess.run([sys.executable, str(script)], input=b"a\nb\n", capture_output=True, env=env, timeout=60)
    assert (r.returncode, r.stdout) == (0, b"A\nB\n"), r.stderr
    # `| head -1`: the reader goes away after one line.
    p = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(b"x\n" * 100000)
    p.stdin.close()
    first = p.stdout.readline()
    p.stdout.close()
    code = p.wait(60)
    assert first == b"X\n"
    assert code == 0, p.stderr.read() if p.stderr else b""
