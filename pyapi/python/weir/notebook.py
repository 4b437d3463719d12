"""Notebook integration: diagrams of blueprints, live per-stage counts, progress bars."""

from __future__ import annotations

import html
import threading
from typing import Any, Optional


def blueprint_html(mermaid: str) -> str:
    """A blueprint's Mermaid source inside a ``<pre class="mermaid">`` block (rendered by
    JupyterLab's Mermaid support or mermaid.js when present, readable as text otherwise)."""
    return '<pre class="mermaid">' + html.escape(mermaid) + "</pre>"


def run_html(handle: Any) -> str:
    """A table of per-stage element counts of a running (or finished) graph."""
    rows = "".join(
        f"<tr><td>{html.escape(path)}</td><td>{c['in']}</td><td>{c['out']}</td></tr>"
        for path, c in sorted(handle.stage_counts().items(), key=lambda kv: _index(kv[0]))
    )
    state = "done" if handle.done() else "running"
    return (
        f"<div><b>weir run</b> ({state})<table><thead><tr><th>stage</th><th>in</th><th>out</th>"
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _index(path: str) -> int:
    try:
        return int(path.rsplit("#", 1)[1])
    except (IndexError, ValueError):
        return 0


def _source_count(handle: Any) -> int:
    counts = handle.stage_counts()
    firsts = [c["out"] for p, c in counts.items() if _index(p) == 0]
    return sum(firsts)


def run_with_progress(graph: Any, *, batch_size: Optional[int] = None, total: Any = True) -> Any:
    """Runs ``graph`` showing a ``tqdm.auto`` bar of elements emitted by the first stage
    (``total`` may be the expected count). Falls back to a plain run without tqdm."""
    from ._run import RunHandle

    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - optional dependency
        tqdm = None
    h = RunHandle._start(graph, batch_size=batch_size)
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
