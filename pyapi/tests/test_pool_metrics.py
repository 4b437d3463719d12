"""The interpreter pools' gauges on ``/metrics`` of a script run with the UI on: live workers,
restarts (a killed worker counts once) and batches queued, per pool, parsed from the
exposition."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

POOLED = textwrap.dedent(
    """
    import sys
    import time
    import weir

    pool = weir.InterpreterPool(2)
    print(" ".join(str(p) for p in sorted(pool.pids())), flush=True)

    def slow(x):
        time.sleep(0.02)
        return x

    try:
        (
            weir.Source.tick(0.0, 0.001, 1)
            .map(slow, pool=pool, name="slow", supervision=[(weir.WorkerCrashed, "resume")])
            .to(weir.Sink.ignore())
            .run()
        )
    except (weir.errors.RunCancelled, KeyboardInterrupt):
        sys.exit(130)
    """
)

# One sample line of the OpenMetrics text format: name, optional {labels}, value.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """``{(name, frozenset(labels)): value}`` and ``{name: type}`` of an exposition."""
    samples, types = {}, {}
    lines = text.splitlines()
    assert lines[-1] == "# EOF", lines[-3:]
    for line in lines[:-1]:
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        key = (m.group(1), labels)
        assert key not in samples, f"{line!r} appears twice"
        samples[key] = float(m.group(3))
    return samples, types


def scrape(url):
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as r:
        assert r.headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
        return parse(r.read().decode())


def pool_values(samples):
    """``{pool id: (alive, restarts, queued)}`` for every pool in the scrape."""
    out = {}
    for (name, labels), v in samples.items():
        if not name.startswith("weir_pool_"):
            continue
        d = dict(labels)
        assert d["backend"] == "process", d
        out.setdefault(d["pool"], {})[name] = v
    return {
        k: (v["weir_pool_processes_alive"], v["weir_pool_restarts_total"], v["weir_pool_queued_batches"])
        for k, v in out.items()
    }


def until(what, cond, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_pool_gauges_follow_workers_restarts_and_queued_batches(tmp_path):
    script = tmp_path / "pool_job.py"
    script.write_text(POOLED)
    env = dict(os.environ, WEIR_HOME=str(tmp_path / "home"), WEIR_LOG="warn")
    p = subprocess.Popen(
        [sys.executable, "-m", "weir", "run", "--ui-port", "0", str(script)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pids = [int(x) for x in p.stdout.readline().split()]
        assert len(pids) == 2
        line = p.stderr.readline()
        prefix = "weir: job pool_job serving its UI at "
        assert line.startswith(prefix), line
        url, token = line[len(prefix) :].strip().split("/#token=")

        samples, types = scrape(url)
        assert types["weir_pool_processes_alive"] == "gauge"
        assert types["weir_pool_restarts"] == "counter"
        assert types["weir_pool_queued_batches"] == "gauge"
        # One pool: both workers alive, none restarted; batches wait in the workers (never more
        # than the stage's max_inflight, 2 * workers).
        busy = until("batches queued in the pool", lambda: (lambda v: v if v["1"][2] >= 1 else None)(pool_values(scrape(url)[0])))
        assert list(busy) == ["1"]
        alive, restarts, queued = busy["1"]
        assert (alive, restarts) == (2, 0)
        assert 1 <= queued <= 4

        # A worker killed: counted once as a restart, and replaced.
        os.kill(pids[0], signal.SIGKILL)
        after = until("the restart", lambda: (lambda v: v if v["1"][:2] == (2, 1) else None)(pool_values(scrape(url)[0])))
        assert list(after) == ["1"]
        time.sleep(0.5)
        assert pool_values(scrape(url)[0])["1"][:2] == (2, 1), "one restart, not more"

        # Cancelled over the API: the script ends as it handles the cancellation.
        req = urllib.request.Request(
            f"{url}/api/v1/jobs/1/cancel", method="POST", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 202
        assert p.wait(timeout=60) == 130
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
