"""Logging and tracing of Python jobs through the engine's one set-up (``weir_ops::logging``):
``python -m weir run --log-format text|json`` writes the engine's events to stderr inside its
``run`` span, filtered by ``WEIR_LOG``; ``OTEL_EXPORTER_OTLP_ENDPOINT`` exports the run and
checkpoint spans, flushed when the interpreter exits; a plain script with none of these variables
logs nothing; bad settings are clear errors."""

import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_service

import weir

SUPERVISED = textwrap.dedent(
    """
    import weir

    class Boom(Exception):
        pass

    def f(x):
        if x == 2:
            raise Boom(f"bad {x}")
        return x

    dead = []
    out = (
        weir.Source.from_iter(range(5))
        .map(f)
        .named("parse")
        .with_supervision([(Boom, "resume")], dead_letters=dead)
        .run_with(weir.Sink.collect())
    )
    print(out, [d.element for d in dead])
    """
)

CHECKPOINTED = textwrap.dedent(
    """
    import weir

    out = weir.Source.tick(0.0, 0.01, 1).take(120).map(lambda x: x + 1).run_with(weir.Sink.collect())
    print(len(out))
    """
)

OTEL = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME")


def _env(tmp_path, **extra):
    env = dict(os.environ, WEIR_HOME=str(tmp_path / "home"))
    for k in ("WEIR_LOG", "RUST_LOG", "WEIR_LOG_FORMAT", "WEIR_UI_PORT", *OTEL):
        env.pop(k, None)
    env.update(extra)
    return env


def _run(tmp_path, source, *flags, name="job", plain=False, **extra):
    script = tmp_path / f"{name}.py"
    script.write_text(source)
    cmd = [sys.executable, str(script)] if plain else [sys.executable, "-m", "weir", "run", "--no-ui", *flags, str(script)]
    return subprocess.run(
        cmd,
        env=_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_json_logs_carry_the_supervised_failure_inside_the_run_span(tmp_path):
    r = _run(tmp_path, SUPERVISED, "--log-format", "json", name="parse_job", WEIR_LOG="info")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[0, 1, 3, 4] [2]\n"
    lines = [json.loads(l) for l in r.stderr.splitlines()]
    assert len(lines) == 1, r.stderr
    (line,) = lines
    del line["timestamp"]
    run_span = {"id": line["span"]["id"], "job": "parse_job", "name": "run"}
    assert line == {
        "level": "WARN",
        "fields": {
            "message": "element failure supervised",
            "stage": "parse#1",
            "error": "stage 'parse#1' failed on element 2: Boom: bad 2",
            "directive": "Resume",
        },
        "target": "weir_graph::logic",
        "span": run_span,
        "spans": [run_span],
    }


def test_text_logs_and_the_filter_of_weir_log(tmp_path):
    r = _run(tmp_path, SUPERVISED, "--log-format", "text", name="parse_job", WEIR_LOG="warn")
    assert r.returncode == 0, r.stderr
    (line,) = r.stderr.splitlines()
    # Plain text when captured (no colours): level, target, message, fields.
    assert line.split(" ", 1)[1] == (
        " WARN weir_graph::logic: element failure supervised stage=parse#1 "
        "error=stage 'parse#1' failed on element 2: Boom: bad 2 directive=Resume"
    ), line
    # At `info` the event names its run.
    r = _run(tmp_path, SUPERVISED, "--log-format", "text", name="parse_job", WEIR_LOG="info")
    (line,) = r.stderr.splitlines()
    assert " WARN run{id=" in line and " job=parse_job}: weir_graph::logic: element failure supervised" in line, line
    # `error` lets the warning through no more.
    r = _run(tmp_path, SUPERVISED, "--log-format", "text", name="parse_job", WEIR_LOG="error")
    assert (r.returncode, r.stdout, r.stderr) == (0, "[0, 1, 3, 4] [2]\n", "")


def test_a_plain_script_without_log_variables_logs_nothing(tmp_path):
    r = _run(tmp_path, SUPERVISED, plain=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, "[0, 1, 3, 4] [2]\n", "")
    # A filter in the environment turns logging on for a plain script too.
    r = _run(tmp_path, SUPERVISED, plain=True, WEIR_LOG="warn")
    assert r.returncode == 0, r.stderr
    (line,) = r.stderr.splitlines()
    assert line.endswith("element failure supervised stage=parse#1 error=stage 'parse#1' failed on element 2: Boom: bad 2 directive=Resume"), line


def test_a_bad_filter_fails_the_run_naming_it(tmp_path):
    r = _run(tmp_path, SUPERVISED, plain=True, WEIR_LOG="weir_engine=loud")
    assert r.returncode == 1
    assert "ValueError: weir logging: invalid log filter 'weir_engine=loud' in WEIR_LOG" in r.stderr, r.stderr


def test_init_logging_checks_its_format():
    with pytest.raises(ValueError, match="format must be 'text' or 'json', got 'xml'"):
        weir.init_logging("xml")


class _Collector:
    """An OTLP/HTTP collector on loopback keeping every request body posted to /v1/traces."""

    def __init__(self):
        got = self.got = []
        paths = self.paths = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                paths.append(self.path)
                got.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector():
    c = _Collector()
    yield c
    c.close()


def _spans(bodies):
    services, spans = set(), []
    for b in bodies:
        req = trace_service.ExportTraceServiceRequest.FromString(b)
        for rs in req.resource_spans:
            for a in rs.resource.attributes:
                if a.key == "service.name":
                    services.add(a.value.string_value)
            for ss in rs.scope_spans:
                spans.extend(ss.spans)
    return services, spans


def _attr(span, key):
    for a in span.attributes:
        if a.key == key:
            v = a.value
            return v.int_value if v.HasField("int_value") else v.string_value
    return None


def _checkpointed(tmp_path, **env):
    """Runs the checkpointed job (checkpoints every 100 ms) with `env` added; asserts it ran."""
    flags = ("--state-dir", str(tmp_path / "state"), "--checkpoint-interval", "100ms")
    r = _run(tmp_path, CHECKPOINTED, *flags, name="otlp_job", WEIR_LOG="warn", OTEL_SERVICE_NAME="py-otlp", **env)
    assert (r.returncode, r.stdout) == (0, "120\n"), r.stderr


def test_a_python_job_exports_its_run_and_checkpoint_spans_flushed_at_exit(tmp_path, collector):
    _checkpointed(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url)
    assert collector.got, "nothing exported"
    assert set(collector.paths) == {"/v1/traces"}
    services, spans = _spans(collector.got)
    assert services == {"py-otlp"}
    runs = [s for s in spans if s.name == "run"]
    assert len(runs) == 1, [s.name for s in spans]
    (run,) = runs
    assert _attr(run, "job") == "otlp_job"
    ids = []
    for s in spans:
        if s.name == "checkpoint":
            assert (s.parent_span_id, s.trace_id) == (run.span_id, run.trace_id)
            ids.append(int(_attr(s, "id")))
    ids.sort()
    assert len(ids) >= 2, ids
    assert ids == list(range(1, len(ids) + 1))


def test_without_an_endpoint_nothing_is_sent(tmp_path, collector):
    _checkpointed(tmp_path)
    assert collector.got == []
