"""``python -m weir``: run, visualize and operate weir jobs from Python.

The same commands, flags, JSON and exit codes as the ``weir`` binary (docs/cli.md)::

    python -m weir run pipeline.py [--ui-port 0] [--state-dir DIR] [--checkpoint-interval 10s] ...
    python -m weir visualize pipeline.py --format mermaid|dot|svg [--physical]
    python -m weir jobs [--json]
    python -m weir status JOB [--json]
    python -m weir cancel JOB
    python -m weir savepoint JOB DIR

Exit codes: 0 ok, 1 the job or the request failed, 2 usage error, 3 job not found or not
reachable, 4 refused (missing or wrong token), 130 cancelled.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

OK, FAILED, USAGE, NOT_FOUND, REFUSED, CANCELLED = 0, 1, 2, 3, 4, 130

EPILOG = """exit codes:
  0    success (the job finished)
  1    the job failed, or the request failed
  2    usage error (unknown command or flag, bad value)
  3    job not found, or its process not reachable
  4    refused: missing or wrong token
  130  the job was cancelled (Ctrl-C, SIGTERM, cancel)"""


class ClientError(Exception):
    """A call to a job's HTTP API that did not give what was asked; ``code`` is the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def weir_home() -> Path:
    """Where serving processes leave their job files (``$WEIR_HOME``, as the binary reads it)."""
    if os.environ.get("WEIR_HOME"):
        return Path(os.environ["WEIR_HOME"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "weir"
    return Path.home() / ".local" / "state" / "weir"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def discover() -> List[Dict[str, Any]]:
    """The job files (``url``, ``token``, ``pid``) of live processes, oldest pid first."""
    found = []
    d = weir_home() / "jobs"
    for f in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            info = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        pid = info.get("pid")
        if isinstance(pid, int) and not _alive(pid):
            continue
        if isinstance(info.get("url"), str):
            found.append(info)
    return found


def _call(
    method: str, url: str, token: Optional[str] = None, body: Optional[Dict[str, Any]] = None
) -> Tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        raise ClientError(f"cannot reach {url}: {e}", NOT_FOUND) from None
    try:
        return status, json.loads(text)
    except ValueError:
        raise ClientError(f"{url} answered something that is not the API's JSON: {text!r}", FAILED) from None


def _ok(url: str, job: str, status: int, v: Any) -> Any:
    if 200 <= status < 300:
        return v
    msg = v.get("error", json.dumps(v)) if isinstance(v, dict) else json.dumps(v)
    if status in (401, 403):
        raise ClientError(f"refused by {url}: {msg}", REFUSED)
    if status == 404:
        raise ClientError(f"no job {job!r} found (jobs lists the running ones)", NOT_FOUND)
    raise ClientError(f"{url} answered {status}: {msg}", FAILED)


def _targets(args: argparse.Namespace) -> List[Dict[str, Any]]:
    if args.url:
        return [{"url": args.url.rstrip("/"), "token": args.token, "pid": None}]
    ts = discover()
    if args.token:
        for t in ts:
            t["token"] = args.token
    return ts


def list_jobs(targets: Sequence[Dict[str, Any]], skip_unreachable: bool = True) -> List[Dict[str, Any]]:
    """Every run of every target (``GET /api/v1/jobs``), each with its process's ``url``."""
    out = []
    for t in targets:
        url = f"{t['url']}/api/v1/jobs"
        try:
            runs = _ok(url, "", *_call("GET", url))
        except ClientError as e:
            if skip_unreachable and e.code == NOT_FOUND:
                continue
            raise
        for r in runs:
            r["url"] = t["url"]
            out.append(r)
    return out


def find(targets: Sequence[Dict[str, Any]], job: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The target running ``job`` (name or run number) and the run's detail."""
    found = []
    unreachable: Optional[ClientError] = None
    for t in targets:
        url = f"{t['url']}/api/v1/jobs/{urllib.parse.quote(job, safe='')}"
        try:
            found.append((t, _ok(url, job, *_call("GET", url))))
        except ClientError as e:
            if e.code == NOT_FOUND and "cannot reach" in str(e) and len(targets) > 1:
                unreachable = e
            elif e.code != NOT_FOUND or "cannot reach" in str(e):
                raise
    if not found:
        raise unreachable or ClientError(f"no job {job!r} found (jobs lists the running ones)", NOT_FOUND)
    if len(found) > 1:
        urls = ", ".join(t["url"] for t, _ in found)
        raise ClientError(f"job {job!r} is ambiguous: it names runs at {urls}; pick one with --url", USAGE)
    return found[0]


def _job_url(t: Dict[str, Any], job: str, detail: Dict[str, Any], what: str) -> str:
    ident = str(detail.get("id", job))
    return f"{t['url']}/api/v1/jobs/{urllib.parse.quote(ident, safe='')}/{what}"


def _print_json(v: Any) -> None:
    print(json.dumps(v, indent=2))


def _uptime(v: Dict[str, Any]) -> str:
    t = v.get("started_at_ms")
    if not isinstance(t, int):
        return "-"
    return f"{max(0, time.time() * 1000 - t) / 1000:.1f}s"


def cmd_jobs(args: argparse.Namespace) -> int:
    runs = list_jobs(_targets(args), skip_unreachable=args.url is None)
    if args.json:
        _print_json(runs)
        return OK
    if not runs:
        print("no running jobs")
        return OK
    print(f"{'PID':<8} {'ID':<4} {'NAME':<20} {'STATE':<10} {'UPTIME':<9} URL")
    for r in runs:
        print(
            f"{str(r.get('pid', '-')):<8} {str(r.get('id', '-')):<4} {str(r.get('name', '-')):<20} "
            f"{str(r.get('state', '-')):<10} {_uptime(r):<9} {r['url']}"
        )
    return OK


def cmd_status(args: argparse.Namespace) -> int:
    t, d = find(_targets(args), args.job)
    if args.json:
        _print_json(d)
        return OK
    print(
        f"job {d.get('id', '-')} {json.dumps(d.get('name', '-'))} (pid {d.get('pid', '-')}) "
        f"{d.get('state', '-')}, up {_uptime(d)} at {t['url']}"
    )
    if d.get("error"):
        print(f"error: {d['error']}")
    c = d.get("checkpoints")
    if isinstance(c, dict):
        last = c.get("last_duration_ms")
        print(
            f"checkpoints: {c.get('completed', '-')} completed, {c.get('failed', '-')} failed, "
            f"latest {c.get('latest_completed') if c.get('latest_completed') is not None else '-'}, "
            f"last took {'-' if last is None else f'{last:.1f}'} ms"
        )
    print(f"{'STAGE':<24} {'SUBTASK':>7} {'IN':>12} {'OUT':>12}")
    for s in d.get("stages") or []:
        name = s.get("stage") or s.get("path") or s.get("name") or "-"
        print(
            f"{name:<24} {str(s.get('subtask', '-')):>7} {str(s.get('elements_in', '-')):>12} "
            f"{str(s.get('elements_out', '-')):>12}"
        )
    return OK


def cmd_cancel(args: argparse.Namespace) -> int:
    t, d = find(_targets(args), args.job)
    url = _job_url(t, args.job, d, "cancel")
    v = _ok(url, args.job, *_call("POST", url, t.get("token")))
    if args.json:
        _print_json(v)
    else:
        print(f"job {d.get('id', '-')} {json.dumps(d.get('name', '-'))}: {v.get('state', '-')}")
    return OK


def cmd_savepoint(args: argparse.Namespace) -> int:
    t, d = find(_targets(args), args.job)
    url = _job_url(t, args.job, d, "savepoint")
    target = os.path.abspath(args.dir)
    v = _ok(url, args.job, *_call("POST", url, t.get("token"), {"dir": target}))
    if args.json:
        _print_json(v)
    else:
        print(f"savepoint of job {d.get('id', '-')} {json.dumps(d.get('name', '-'))} written to {v.get('path', '-')}")
    return OK


def _duration(s: str) -> str:
    """Checks a ``10s`` / ``500ms`` / ``1m`` duration (the extension parses it)."""
    units = ("ms", "s", "m", "h", "us", "ns")
    text = s.strip()
    if not text or not any(text.endswith(u) for u in units) or not text[0].isdigit():
        raise argparse.ArgumentTypeError(f"{s!r} is not a duration like 10s or 500ms")
    return text


def _job_env(args: argparse.Namespace, script: str) -> Dict[str, str]:
    """The ``WEIR_*`` variables the job flags become (as ``weir run`` sets them)."""
    if args.state_dir is None and (args.checkpoint_interval or args.from_savepoint):
        raise ClientError(
            "--checkpoint-interval and --from-savepoint need a state directory (--state-dir)", USAGE
        )
    if args.parallelism is not None and args.parallelism < 1:
        raise ClientError("--parallelism must be above zero", USAGE)
    env = {"WEIR_JOB_NAME": Path(script).stem, "WEIR_LOG_FORMAT": args.log_format}
    if not args.no_ui:
        env["WEIR_UI_PORT"] = str(args.ui_port)
        env["WEIR_BIND"] = args.bind
        if args.metrics_port is not None:
            env["WEIR_METRICS_PORT"] = str(args.metrics_port)
        if args.token:
            env["WEIR_TOKEN"] = args.token
    for key, val in (
        ("WEIR_STATE_DIR", args.state_dir),
        ("WEIR_CHECKPOINT_INTERVAL", args.checkpoint_interval),
        ("WEIR_FROM_SAVEPOINT", args.from_savepoint),
        ("WEIR_PARALLELISM", None if args.parallelism is None else str(args.parallelism)),
    ):
        if val is not None:
            env[key] = val
    return env


def _run_child(script: str, script_args: Sequence[str], env: Dict[str, str]) -> int:
    """Runs ``script`` in a new interpreter with ``env`` added; its exit code (128 + signal)."""
    full = dict(os.environ)
    full.update(env)
    proc = subprocess.Popen([sys.executable, script, *script_args], env=full)
    forwarded = (signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, lambda n, _f: proc.send_signal(n)) for s in forwarded}
    try:
        while True:
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt:
                # The terminal sent SIGINT to the child too; it cancels its run and exits.
                continue
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return 128 - rc if rc < 0 else rc


def cmd_run(args: argparse.Namespace) -> int:
    return _run_child(args.script, args.args, _job_env(args, args.script))


def cmd_visualize(args: argparse.Namespace) -> int:
    env = {
        "WEIR_VISUALIZE": args.format,
        "WEIR_VISUALIZE_PHYSICAL": "1" if args.physical else "0",
        "WEIR_JOB_NAME": Path(args.script).stem,
    }
    if args.parallelism is not None:
        env["WEIR_PARALLELISM"] = str(args.parallelism)
    for k in ("WEIR_UI_PORT", "WEIR_STATE_DIR"):
        os.environ.pop(k, None)
    rc = _run_child(args.script, args.args, env)
    if rc != OK:
        print(f"visualize: {args.script} exited with {rc} before printing its graph", file=sys.stderr)
    return rc


def _reach(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="talk to the process at this URL instead of discovering them")
    p.add_argument("--token", help="the token of mutating calls (default: the one in the job file)")
    p.add_argument("--json", action="store_true", help="print the API's JSON instead of text")


def parser() -> argparse.ArgumentParser:
    """The ``python -m weir`` command line."""
    top = argparse.ArgumentParser(
        prog="python -m weir",
        description="Run, visualize and operate weir jobs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run a pipeline script with the UI on",
        epilog="example: python -m weir run pipeline.py --state-dir /tmp/st --checkpoint-interval 10s",
    )
    run.add_argument("--state-dir", help="keep checkpoints in this directory")
    run.add_argument("--checkpoint-interval", type=_duration, help="time between checkpoints (10s, 500ms)")
    run.add_argument("--from-savepoint", help="start from this savepoint")
    run.add_argument("--parallelism", type=int, help="default parallelism of the stages")
    run.add_argument("--ui-port", type=int, default=0, help="port of the UI and API (0: any free port)")
    run.add_argument("--metrics-port", type=int, help="serve /metrics on this port too")
    run.add_argument("--bind", default="127.0.0.1", help="address the UI and API listen on")
    run.add_argument("--token", help="token of cancel and savepoint calls (default: random)")
    run.add_argument("--log-format", choices=("text", "json"), default="text")
    run.add_argument("--no-ui", action="store_true", help="do not serve the UI, API and metrics")
    run.add_argument("script", help="the Python script to run")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    run.set_defaults(fn=cmd_run)
    viz = sub.add_parser(
        "visualize",
        help="print a script's graph or physical plan without running it",
        epilog="example: python -m weir visualize pipeline.py --format svg --physical > plan.svg",
    )
    viz.add_argument("--format", choices=("mermaid", "dot", "svg"), default="mermaid")
    viz.add_argument("--physical", action="store_true", help="the physical plan (islands, channels)")
    viz.add_argument("--parallelism", type=int, help="default parallelism the plan is made with")
    viz.add_argument("script", help="the Python script whose graph is printed (it stops before running)")
    viz.add_argument("args", nargs="*", help="arguments passed to the script (after --)")
    viz.set_defaults(fn=cmd_visualize)
    jobs = sub.add_parser("jobs", help="list running jobs", epilog="example: python -m weir jobs --json")
    _reach(jobs)
    jobs.set_defaults(fn=cmd_jobs)
    for name, fn, hlp in (
        ("status", cmd_status, "show a job and its stages"),
        ("cancel", cmd_cancel, "cancel a job (needs its token)"),
    ):
        p = sub.add_parser(name, help=hlp, epilog=f"example: python -m weir {name} my_job")
        p.add_argument("job", help="the job: its name or run number")
        _reach(p)
        p.set_defaults(fn=fn)
    sp = sub.add_parser(
        "savepoint", help="take a savepoint of a job", epilog="example: python -m weir savepoint my_job /tmp/sp"
    )
    sp.add_argument("job", help="the job: its name or run number")
    sp.add_argument("dir", help="the directory the savepoint is written to")
    _reach(sp)
    sp.set_defaults(fn=cmd_savepoint)
    return top


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; the exit code."""
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except ClientError as e:
        print(f"weir: {e}", file=sys.stderr)
        return e.code


if __name__ == "__main__":
    sys.exit(main())
