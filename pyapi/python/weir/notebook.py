"""Notebook integration: diagrams of blueprints, live per-stage counts, progress bars."""

from __future__ import annotations

import html
import threading
from typing import Any, Dict, List, Optional, Tuple


def blueprint_html(mermaid: str) -> str:
    """A blueprint's Mermaid source inside a ``<pre class="mermaid">`` block (rendered by
    JupyterLab's Mermaid support or mermaid.js when present, readable as text otherwise)."""
    return '<pre class="mermaid">' + html.escape(mermaid) + "</pre>"


def _rate(r: Any) -> str:
    if r is None:
        return "-"
    for unit, k in (("M", 1e6), ("k", 1e3)):
        if r >= k:
            return f"{r / k:.1f}{unit}/s"
    return f"{r:.0f}/s"


def _rows(handle: Any) -> List[Tuple[str, Dict[str, Any]]]:
    return sorted(handle.stage_stats().items(), key=lambda kv: _index(kv[0]))


def run_html(handle: Any) -> str:
    """A table of per-stage element counts and rates of a running (or finished) graph."""
    rows = "".join(
        f"<tr><td>{html.escape(path)}</td><td>{c['in']}</td><td>{c['out']}</td>"
        f"<td>{_rate(c['rate'])}</td><td>{_rate(c['recent_rate'])}</td>"
        f"<td>{c['busy_ms']:.0f}</td><td>{c['queued']}</td></tr>"
        for path, c in _rows(handle)
    )
    state = "done" if handle.done() else "running"
    return (
        f"<div><b>weir run</b> ({state}, {handle.elapsed():.1f} s)<table><thead><tr><th>stage</th>"
        "<th>in</th><th>out</th><th>out rate</th><th>recent</th><th>busy ms</th><th>queued</th>"
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def run_text(handle: Any) -> str:
    """:func:`run_html` as plain text lines."""
    state = "done" if handle.done() else "running"
    lines = [f"weir run ({state}, {handle.elapsed():.1f} s)"]
    for path, c in _rows(handle):
        lines.append(
            f"  {path:<32} in {c['in']:>12} out {c['out']:>12} {_rate(c['rate']):>10}"
            f" recent {_rate(c['recent_rate']):>10} queued {c['queued']}"
        )
    return "\n".join(lines)


def watch(handle: Any, interval: float = 1.0) -> None:
    """Refreshes the run's table every ``interval`` seconds until it is over: an updating
    display in IPython, text lines elsewhere. Ctrl-C stops watching."""
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display

        live = get_ipython() is not None
    except ImportError:  # pragma: no cover - IPython is optional
        live = False
    shown = display(HTML(run_html(handle)), display_id=True) if live else None
    try:
        while True:
            over = handle._done.wait(max(0.05, interval))
            if shown is not None:
                shown.update(HTML(run_html(handle)))
            else:
                print(run_text(handle), flush=True)
            if over:
                return
    except KeyboardInterrupt:
        return


def _index(path: str) -> int:
    try:
        return int(path.rsplit("#", 1)[1])
    except (IndexError, ValueError):
        return 0


def _source_count(handle: Any) -> int:
    counts = handle.stage_counts()
    firsts = [c["out"] for p, c in counts.items() if _index(p) == 0]
    return sum(firsts)


def run_with_progress(
    graph: Any, *, batch_size: Optional[int] = None, total: Any = True, parallelism: Optional[int] = None
) -> Any:
    """Runs ``graph`` showing a ``tqdm.auto`` bar of elements emitted by the first stage
    (``total`` may be the expected count). Falls back to a plain run without tqdm."""
    from ._run import RunHandle

    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - optional dependency
        tqdm = None
    h = RunHandle._start(graph, batch_size=batch_size, parallelism=parallelism)
    bar = None
    if tqdm is not None:
        bar = tqdm(total=None if total is True else int(total), unit="el", desc="weir")
    seen = 0
    try:
        while not h._done.wait(0.1):
            if bar is not None:
                n = _source_count(h)
                bar.update(n - seen)
                seen = n
    except KeyboardInterrupt:
        h.cancel()
        h._done.wait()
        raise
    finally:
        if bar is not None:
            n = _source_count(h)
            bar.update(n - seen)
            bar.close()
    return h._result()


_lock = threading.Lock()
