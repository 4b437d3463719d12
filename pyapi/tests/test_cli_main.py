"""``python -m weir``: visualize a script without running it, run one with the UI on, and operate
it (jobs, status, savepoint, cancel, wrong token, unknown job) with the documented JSON and exit
codes; unknown commands and flags are usage errors."""

import json
import os
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET

import pytest

SMALL = textwrap.dedent(
    """
    import weir

    out = weir.Source.from_iter([1, 2, 3]).map(lambda x: x + 1).named("inc").run_with(weir.Sink.collect())
    print(out)
    """
)

TICKER = textwrap.dedent(
    """
    import sys
    import weir

    try:
        weir.Source.tick(0.0, 0.005, 1).map(lambda x: x * 2).named("double").to(weir.Sink.ignore()).run()
    except (weir.errors.RunCancelled, KeyboardInterrupt):
        sys.exit(130)
    """
)


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def weir(home, *args, timeout=120):
    # `warn`: the job's `info` lines (the server listening) would come before the URL line.
    env = dict(os.environ, WEIR_HOME=str(home), WEIR_LOG="warn")
    env.pop("WEIR_UI_PORT", None)
    return subprocess.run(
        [sys.executable, "-m", "weir", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_visualize_prints_the_graph_in_every_format_and_does_not_run_it(tmp_path, home):
    script = tmp_path / "small.py"
    script.write_text(SMALL)
    r = weir(home, "visualize", str(script), "--format", "mermaid")
    assert (r.returncode, r.stdout) == (
        0,
        'flowchart LR\n    n0["from_iter"]\n    n1["inc"]\n    n2["collect"]\n    n0 --> n1\n    n1 --> n2\n',
    ), r.stderr
    r = weir(home, "visualize", str(script), "--format", "dot")
    assert r.stdout == (
        'digraph weir {\n    rankdir=LR;\n    n0 [label="from_iter", shape=ellipse];\n'
        '    n1 [label="inc", shape=ellipse];\n    n2 [label="collect", shape=ellipse];\n'
        "    n0 -> n1;\n    n1 -> n2;\n}\n"
    )
    r = weir(home, "visualize", str(script), "--format", "mermaid", "--physical")
    assert r.stdout == (
        'flowchart LR\n    subgraph i0 ["island 0 (chain, x1, on python)"]\n        n0["from_iter"]\n'
        '        n1["inc"]\n        n0 --> n1\n        n2["collect"]\n        n1 --> n2\n    end\n'
    )
    r = weir(home, "visualize", str(script), "--format", "svg", "--physical")
    assert r.returncode == 0, r.stderr
    root = ET.fromstring(r.stdout)
    ns = "{http://www.w3.org/2000/svg}"
    nodes = [g.find(f"{ns}title").text for g in root.iter(f"{ns}g") if g.get("class") == "node"]
    assert nodes == ["from_iter", "inc", "collect"]
    assert [g.get("id") for g in root.iter(f"{ns}g") if g.get("class") == "island"] == ["i0"]


def _start(tmp_path, home, *flags):
    script = tmp_path / "ticker_job.py"
    script.write_text(TICKER)
    env = dict(os.environ, WEIR_HOME=str(home), WEIR_LOG="warn")
    p = subprocess.Popen(
        [sys.executable, "-m", "weir", "run", *flags, str(script)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = p.stderr.readline()
    prefix = "weir: job ticker_job serving its UI at "
    assert line.startswith(prefix), line
    url, token = line[len(prefix) :].strip().split("/#token=")
    return p, url, token


def test_a_running_script_is_listed_inspected_savepointed_refused_and_cancelled(tmp_path, home):
    state, sp = tmp_path / "state", tmp_path / "sp"
    p, url, token = _start(
        tmp_path, home, "--ui-port", "0", "--state-dir", str(state), "--checkpoint-interval", "100ms"
    )
    try:
        assert url.startswith("http://127.0.0.1:") and len(token) == 32
        # The job runs in the script's interpreter, a child of `python -m weir run`.
        [job_file] = list((home / "jobs").glob("*.json"))
        pid = json.loads(job_file.read_text())["pid"]
        with open(f"/proc/{pid}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) == p.pid
        r = weir(home, "jobs", "--json")
        jobs = json.loads(r.stdout)
        assert [(j["id"], j["name"], j["state"], j["pid"], j["url"]) for j in jobs] == [
            (1, "ticker_job", "running", pid, url)
        ]
        r = weir(home, "jobs")
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["PID", "ID", "NAME", "STATE", "UPTIME", "URL"]
        row = lines[1].split()
        assert row[:4] == [str(pid), "1", "ticker_job", "running"] and row[5] == url
        detail = json.loads(weir(home, "status", "ticker_job", "--json").stdout)
        assert sorted(s["path"] for s in detail["stages"]) == ["double#1", "ignore#2", "tick#0"]
        r = weir(home, "status", "1")
        assert r.stdout.startswith(f'job 1 "ticker_job" (pid {pid}) running, up '), r.stdout
        assert r.stdout.splitlines()[1].startswith("checkpoints: "), r.stdout
        deadline = time.monotonic() + 60
        while json.loads(weir(home, "status", "1", "--json").stdout)["checkpoints"]["completed"] < 1:
            assert time.monotonic() < deadline, "no checkpoint completed"
            time.sleep(0.05)
        r = weir(home, "savepoint", "ticker_job", str(sp), "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"id": 1, "path": str(sp)}
        assert (sp / "MANIFEST").is_file()
        r = weir(home, "cancel", "ticker_job", "--token", "0" * 32)
        assert r.returncode == 4
        assert r.stderr.startswith(f"weir: refused by {url}/api/v1/jobs/1/cancel: "), r.stderr
        r = weir(home, "status", "nosuch")
        assert (r.returncode, r.stderr) == (3, "weir: no job 'nosuch' found (jobs lists the running ones)\n")
        r = weir(home, "cancel", "ticker_job")
        assert (r.returncode, r.stdout) == (0, 'job 1 "ticker_job": cancelling\n'), r.stderr
        assert p.wait(timeout=60) == 130
        assert json.loads(weir(home, "jobs", "--json").stdout) == []
        assert list((home / "jobs").glob("*.json")) == [], "the job file is removed at exit"
    finally:
        p.kill()
        p.wait()


def test_sigterm_reaches_the_script_and_its_exit_code_comes_back(tmp_path, home):
    p, _, _ = _start(tmp_path, home)
    try:
        p.terminate()
        # The script's run is cancelled by SIGTERM's default action: it ends by the signal.
        assert p.wait(timeout=60) == 128 + 15
    finally:
        p.kill()
        p.wait()


def test_usage_errors_exit_2_and_settings_are_checked(tmp_path, home):
    r = weir(home, "stauts", "x")
    assert r.returncode == 2 and "invalid choice: 'stauts'" in r.stderr
    r = weir(home, "jobs", "--jsn")
    assert r.returncode == 2 and "unrecognized arguments: --jsn" in r.stderr
    r = weir(home, "run", "--checkpoint-interval", "soon", "x.py")
    assert r.returncode == 2 and "'soon' is not a duration like 10s or 500ms" in r.stderr
    r = weir(home, "run", "--checkpoint-interval", "1s", str(tmp_path / "x.py"))
    assert (r.returncode, r.stderr) == (
        2,
        "weir: --checkpoint-interval and --from-savepoint need a state directory (--state-dir)\n",
    )
    r = weir(home, "status", "x", "--url", "http://127.0.0.1:9")
    assert r.returncode == 3 and r.stderr.startswith("weir: cannot reach http://127.0.0.1:9/api/v1/jobs/x: ")
