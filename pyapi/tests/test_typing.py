"""The DSL's static types: mypy --strict and pyright (strict) accept the typing check file and the
examples, reject the mistakes marked in them, and ``_dsl.pyi`` matches the runtime (stubtest)."""

import ast
import os
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
TYPING = os.path.join(HERE, "typing")
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
EXAMPLES = sorted(
    os.path.join(ROOT, "examples", "python", f)
    for f in os.listdir(os.path.join(ROOT, "examples", "python"))
    if f.endswith(".py")
)


def _run(args, cwd, timeout=180):
    """Runs a checker with this interpreter; returns (exit code, stdout + stderr). The pyright
    wrapper's check for a newer release (a registry request) is turned off."""
    env = dict(os.environ, PYRIGHT_PYTHON_IGNORE_WARNINGS="1")
    p = subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    return p.returncode, p.stdout + p.stderr


def _mypy(files, cwd, tmp_path):
    return _run(
        ["mypy", "--config-file", os.path.join(TYPING, "mypy.ini"), "--cache-dir", str(tmp_path / "mypy"), *files],
        cwd,
    )


def _pyright(project, cwd):
    return _run(["pyright", "--pythonpath", sys.executable, "-p", project], cwd)


def test_mypy_strict_accepts_check_file_and_examples(tmp_path):
    code, out = _mypy([os.path.join(TYPING, "check_types.py"), *EXAMPLES], ROOT, tmp_path)
    assert code == 0, out
    assert f"Success: no issues found in {1 + len(EXAMPLES)} source files" in out, out


def test_pyright_strict_accepts_check_file_and_examples():
    code, out = _pyright(os.path.join(TYPING, "pyrightconfig.json"), ROOT)
    assert code == 0, out
    assert "0 errors, 0 warnings, 0 informations" in out, out


def test_stub_matches_runtime(tmp_path):
    code, out = _run(
        ["mypy.stubtest", "weir._dsl", "--allowlist", os.path.join(TYPING, "stubtest-allowlist.txt")],
        tmp_path,
    )
    assert code == 0, out
    assert "Success: no issues found in 1 module" in out, out


def _stub_members():
    """``{class: names declared on it or its bases}`` for the classes of ``weir/_dsl.pyi``."""
    import weir

    tree = ast.parse(open(os.path.join(os.path.dirname(weir.__file__), "_dsl.pyi")).read())
    own, bases = {}, {}
    for c in tree.body:
        if isinstance(c, ast.ClassDef):
            own[c.name] = {f.name for f in c.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
            bases[c.name] = [b.id for b in c.bases if isinstance(b, ast.Name)]

    def members(name):
        out = set(own.get(name, ()))
        for b in bases.get(name, ()):
            out |= members(b)
        return out

    return {name: members(name) for name in own}


def test_stub_declares_every_public_method():
    # stubtest compares what the stub declares, but not methods a runtime class inherits (the
    # operators all live on the runtime's _Linear): a new operator must be typed on Source and Flow.
    import weir

    stub = _stub_members()
    for cls in (weir.Source, weir.Flow, weir.Sink, weir.RunnableGraph, weir.Keyed, weir.SubFlows, weir.GraphBuilder):
        runtime = {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}
        assert sorted(runtime - stub[cls.__name__]) == [], cls.__name__


SNIPPET = textwrap.dedent(
    """\
    import weir

    src = weir.Source.from_iter([1, 2, 3])
    reveal_type(src)
    reveal_type(src.run_with(weir.Sink.collect()))
    reveal_type(src.to(weir.Sink.collect(), "right").start())
    src.map(lambda x: x.upper())
    src.to(weir.Sink.collect(), "rigth")
    """
)


def test_checkers_report_the_exact_errors(tmp_path):
    path = tmp_path / "snippet.py"
    path.write_text(SNIPPET)

    code, out = _mypy([str(path)], tmp_path, tmp_path)
    lines = [l for l in out.splitlines() if l.startswith("snippet.py:")]
    assert code == 1
    assert lines[:5] == [
        'snippet.py:4: note: Revealed type is "weir._dsl.Source[int]"',
        'snippet.py:5: note: Revealed type is "list[int]"',
        'snippet.py:6: note: Revealed type is "weir._run.RunHandle[list[int]]"',
        'snippet.py:7: error: "int" has no attribute "upper"  [attr-defined]',
        'snippet.py:8: error: No overload variant of "to" of "Source" matches argument types'
        ' "Sink[Never, list[Never]]", "str"  [call-overload]',
    ], out
    assert "Found 2 errors in 1 file" in out, out

    (tmp_path / "pyrightconfig.json").write_text('{"typeCheckingMode": "strict"}')
    code, out = _pyright(str(tmp_path / "pyrightconfig.json"), tmp_path)
    found = [l.strip().split(" - ", 1) for l in out.splitlines() if "snippet.py:" in l and " - " in l]
    assert code == 1
    assert [(loc.rsplit("/", 1)[-1], msg) for loc, msg in found] == [
        ("snippet.py:4:13", 'information: Type of "src" is "Source[int]"'),
        ("snippet.py:5:13", 'information: Type of "src.run_with(weir.Sink.collect())" is "List[int]"'),
        ("snippet.py:6:13", 'information: Type of "src.to(weir.Sink.collect(), "right").start()" is "RunHandle[List[int]]"'),
        ("snippet.py:7:19", "error: Type of \"upper\" is unknown (reportUnknownMemberType)"),
        ("snippet.py:7:19", "error: Return type of lambda is unknown (reportUnknownLambdaType)"),
        ("snippet.py:7:21", 'error: Cannot access attribute "upper" for class "int"'),
        ("snippet.py:8:1", 'error: No overloads for "to" match the provided arguments (reportCallIssue)'),
        ("snippet.py:8:29", 'error: Argument of type "Literal[\'rigth\']" cannot be assigned to parameter "keep" of type'
         ' "Literal[\'left\']" in function "to"'),
    ], out
    assert "5 errors, 0 warnings, 3 informations" in out, out
