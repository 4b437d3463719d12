"""The Python examples under examples/python run (the notebook through nbclient)."""

import os
import runpy
import sys

import nbformat
from nbclient import NotebookClient


def test_word_count_example(repo_root, capsys):
    runpy.run_path(os.path.join(repo_root, "examples", "python", "word_count.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "the" in out and "dog" in out


def test_parallel_scoring_example(repo_root, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["parallel_scoring.py", "2"])
    runpy.run_path(os.path.join(repo_root, "examples", "python", "parallel_scoring.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert out.count(":") >= 4 and "skipped 2 bad records" in out


def test_arrow_etl_example(repo_root, capsys):
    runpy.run_path(os.path.join(repo_root, "examples", "python", "arrow_etl.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "573 rows above 17000 F" in out and "Pune: 115 rows" in out


def test_parquet_etl_example(repo_root, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["parquet_etl.py", str(tmp_path)])
    runpy.run_path(os.path.join(repo_root, "examples", "python", "parquet_etl.py"), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "573 rows above 17000 F in 2 parts",
        "Lima: 229 rows, max 18030.2 F",
        "Oslo: 229 rows, max 18028.4 F",
        "Pune: 115 rows, max 18026.6 F",
    ]
    assert sorted(os.listdir(tmp_path / "hot")) == [f"part-{i:020}.parquet" for i in range(2)]


def test_quickstart_notebook_executes(repo_root):
    path = os.path.join(repo_root, "examples", "python", "quickstart.ipynb")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    reprs = [o for o in outputs if o.get("output_type") == "execute_result"]
    assert any("mermaid" in "".join(o["data"].get("text/html", "")) for o in reprs)
    assert any("<table>" in "".join(o["data"].get("text/html", "")) for o in reprs)


def test_persistent_account_example(repo_root, capsys):
    runpy.run_path(os.path.join(repo_root, "examples", "python", "persistent_account.py"), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "alice: 100",
        "bob: 20",
        "alice: 70",
        "bob: -50 rejected (balance 20)",
        "bob recovered with 20 after 1 events",
        "bob: already applied",
        "bob: 25",
        "alice's events: [(1, {'amount': 100}), (2, {'amount': -30})]",
    ]


def test_sharded_counter_example(repo_root, capsys):
    runpy.run_path(os.path.join(repo_root, "examples", "python", "sharded_counter.py"), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    assert [line.split() for line in out] == [
        ["brown", "1"], ["dog", "1"], ["end", "1"], ["fox", "1"], ["jumps", "1"],
        ["lazy", "1"], ["over", "1"], ["quick", "1"], ["the", "3"],
    ]


def test_cluster_word_count_example(repo_root, capsys):
    runpy.run_path(os.path.join(repo_root, "examples", "python", "cluster_word_count.py"), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "10 words over 3 nodes in attempt 1, as one process counts them:",
        "     the 780",
        "   barks 480",
        "   brown 480",
        "   jumps 480",
        "    lazy 480",
    ]
