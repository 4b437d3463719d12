//! The `weir` binary end to end: a running job (`weir run --example ticker`) operated by `weir
//! jobs`, `status`, `savepoint`, `cancel`; signals; `weir visualize` in every format; `weir run`
//! on a Python script with the UI on; completions; usage errors and their exit codes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_weir");

/// A fresh directory for one test.
fn fresh(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `weir <args>` with `WEIR_HOME=home`.
fn weir(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env("WEIR_LOG", "warn")
        .args(args)
        .env("WEIR_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("weir runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A job process and the UI URL (with token) it printed.
struct Job {
    child: Child,
    url: String,
    token: String,
    stderr: BufReader<std::process::ChildStderr>,
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `weir run <args>` and reads the URL line it prints on stderr.
fn start(home: &Path, args: &[&str]) -> Job {
    let mut child = Command::new(BIN)
        .env("WEIR_LOG", "warn")
        .arg("run")
        .args(args)
        .env("WEIR_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir run starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let prefix = "weir: job ticker serving its UI at ";
    assert!(line.starts_with(prefix), "{line:?}");
    let ui = line[prefix.len()..].trim_end().to_owned();
    let (url, token) = ui
        .split_once("/#token=")
        .expect("the URL carries the token");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(token.len(), 32, "{token}");
    Job {
        child,
        url: url.to_owned(),
        token: token.to_owned(),
        stderr,
    }
}

fn json(o: &Output) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stdout)))
}

/// Waits for the child's exit status (generous bound).
fn exit_of(child: &mut Child) -> Option<i32> {
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the job did not exit");
}

#[test]
fn a_running_job_is_listed_inspected_savepointed_refused_and_cancelled() {
    let home = fresh("ops");
    let state = home.join("state");
    let sp = home.join("sp");
    let mut job = start(
        &home,
        &[
            "--example",
            "ticker",
            "--ui-port",
            "0",
            "--state-dir",
            state.to_str().unwrap(),
            "--checkpoint-interval",
            "100ms",
        ],
    );
    let pid = job.child.id();

    // weir jobs: the one run of the one process, in JSON and as a table.
    let jobs = json(&weir(&home, &["jobs", "--json"]));
    let list = jobs.as_array().unwrap();
    assert_eq!(list.len(), 1, "{jobs}");
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["name"], "ticker");
    assert_eq!(list[0]["state"], "running");
    assert_eq!(list[0]["pid"], pid);
    assert_eq!(list[0]["url"], job.url.as_str());
    let o = weir(&home, &["jobs"]);
    assert_eq!(o.status.code(), Some(0));
    let table = text(&o.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("PID      ID   NAME"), "{table}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row[..4],
        [pid.to_string().as_str(), "1", "ticker", "running"]
    );
    assert_eq!(row[5], job.url);

    // weir status: every stage subtask of the plan.
    let d = json(&weir(&home, &["status", "ticker", "--json"]));
    let mut stages: Vec<(String, u64)> = d["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_owned(),
                s["subtask"].as_u64().unwrap(),
            )
        })
        .collect();
    stages.sort();
    assert_eq!(
        stages,
        vec![
            ("sink#2".to_owned(), 0),
            ("square#1".to_owned(), 0),
            ("square#1".to_owned(), 1),
            ("ticks#0".to_owned(), 0)
        ]
    );
    let o = weir(&home, &["status", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.starts_with(&format!("job 1 \"ticker\" (pid {pid}) running, up ")),
        "{out}"
    );
    assert!(
        out.lines()
            .next()
            .unwrap()
            .ends_with(&format!(" at {}", job.url)),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1].starts_with("checkpoints: "), "{out}");
    assert!(lines[2].starts_with("STAGE "), "{out}");
    let names: Vec<&str> = lines[3..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        vec!["sink#2", "square#1", "square#1", "ticks#0"],
        "{out}"
    );

    // weir savepoint: written once the barrier went through every stage.
    let o = weir(&home, &["savepoint", "ticker", sp.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!(
            "savepoint of job 1 \"ticker\" written to {}\n",
            sp.display()
        )
    );
    assert!(sp.join("MANIFEST").is_file());

    // A wrong token is refused (4), an unknown job is not found (3), nothing changes.
    let o = weir(&home, &["cancel", "ticker", "--token", "0000"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    assert!(text(&o.stderr).starts_with(&format!(
        "weir: refused by {}/api/v1/jobs/1/cancel: ",
        job.url
    )));
    let o = weir(&home, &["status", "nosuch"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        text(&o.stderr),
        "weir: no job \"nosuch\" found (weir jobs lists the running ones)\n"
    );
    let o = weir(
        &home,
        &["cancel", "nosuch", "--url", &job.url, "--token", &job.token],
    );
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        json(&weir(&home, &["status", "ticker", "--json"]))["state"],
        "running"
    );

    // weir cancel with the job file's token: the job ends with 130 and removes its job file.
    let o = weir(&home, &["cancel", "ticker"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "job 1 \"ticker\": cancelling\n");
    assert_eq!(exit_of(&mut job.child), Some(130));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut job.stderr, &mut rest).unwrap();
    assert_eq!(rest, "weir: job ticker cancelled\n");
    assert_eq!(
        json(&weir(&home, &["jobs", "--json"])),
        serde_json::json!([])
    );
    assert_eq!(text(&weir(&home, &["jobs"]).stdout), "no running jobs\n");
    let o = weir(&home, &["status", "ticker", "--url", &job.url]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "an ended process is not reachable"
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn sigint_cancels_a_job_with_exit_code_130() {
    let home = fresh("sigint");
    let mut job = start(&home, &["--example", "ticker"]);
    let pid = nix::unistd::Pid::from_raw(job.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(exit_of(&mut job.child), Some(130));
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn an_unreachable_url_is_exit_3() {
    let home = fresh("unreachable");
    let o = weir(&home, &["jobs", "--url", "http://127.0.0.1:9"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stderr).starts_with("weir: cannot reach http://127.0.0.1:9/api/v1/jobs: "));
}

#[test]
fn visualize_prints_the_ticker_in_every_format() {
    let home = fresh("viz");
    let o = weir(
        &home,
        &["visualize", "--example", "ticker", "--format", "mermaid"],
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        text(&o.stdout),
        "flowchart LR\n    n0[\"ticks uid=ticks\"]\n    n1[\"square x2\"]\n    n2[\"sink\"]\n    n0 --> n1\n    n1 --> n2\n"
    );
    let o = weir(
        &home,
        &["visualize", "--example", "ticker", "--format", "dot"],
    );
    assert_eq!(
        text(&o.stdout),
        "digraph weir {\n    rankdir=LR;\n    n0 [label=\"ticks\", shape=ellipse];\n    n1 [label=\"square\", shape=ellipse];\n    n2 [label=\"sink\", shape=ellipse];\n    n0 -> n1;\n    n1 -> n2;\n}\n"
    );
    let o = weir(
        &home,
        &[
            "visualize",
            "--example",
            "ticker",
            "--format",
            "dot",
            "--physical",
        ],
    );
    assert_eq!(
        text(&o.stdout),
        "digraph weir {\n    rankdir=LR;\n    subgraph cluster_i0 {\n        label=\"island 0 (chain, x1)\";\n        n0 [label=\"ticks uid=ticks\", shape=ellipse];\n    }\n    subgraph cluster_i1 {\n        label=\"island 1 (chain, x2)\";\n        n1 [label=\"square\", shape=ellipse];\n    }\n    subgraph cluster_i2 {\n        label=\"island 2 (chain, x1)\";\n        n2 [label=\"sink\", shape=ellipse];\n    }\n    n0 -> n1 [style=dashed, label=\"rebalance\"];\n    n1 -> n2 [style=dashed, label=\"rebalance\"];\n}\n"
    );
    for physical in [false, true] {
        let mut args = vec!["visualize", "--example", "demo", "--format", "svg"];
        if physical {
            args.push("--physical");
        }
        let o = weir(&home, &args);
        assert_eq!(o.status.code(), Some(0));
        let svg = text(&o.stdout);
        let doc = roxmltree::Document::parse(&svg).expect("the SVG is XML");
        let class = |c: &str| -> Vec<String> {
            doc.descendants()
                .filter(|n| n.attribute("class") == Some(c))
                .map(|n| {
                    n.children()
                        .find(|c| c.has_tag_name("title"))
                        .and_then(|t| t.text())
                        .unwrap_or("")
                        .to_owned()
                })
                .collect()
        };
        let nodes = class("node");
        if physical {
            assert_eq!(
                nodes,
                ["range", "split", "key_by", "count", "leaderboard", "head"]
            );
            assert_eq!(
                doc.descendants()
                    .filter(|n| n.attribute("class") == Some("island"))
                    .count(),
                5
            );
        } else {
            assert_eq!(
                nodes,
                [
                    "range",
                    "split x2",
                    "key_by x2",
                    "count x2",
                    "leaderboard",
                    "head"
                ]
            );
        }
        assert_eq!(
            doc.descendants()
                .filter(|n| n.attribute("class") == Some("edge"))
                .count(),
            5
        );
        assert_eq!(doc.root_element().tag_name().name(), "svg");
    }
    let o = weir(
        &home,
        &[
            "visualize",
            "--example",
            "demo",
            "--format",
            "mermaid",
            "--physical",
        ],
    );
    assert_eq!(
        text(&o.stdout),
        r#"flowchart LR
    subgraph i0 ["island 0 (chain, x1)"]
        n0["range"]
    end
    subgraph i1 ["island 1 (chain, x2)"]
        n1["split"]
        n2["key_by"]
        n1 --> n2
    end
    subgraph i2 ["island 2 (chain, x2)"]
        n3["count"]
    end
    subgraph i3 ["island 3 (async, x1)"]
        n4["leaderboard"]
    end
    subgraph i4 ["island 4 (chain, x1)"]
        n5["head"]
    end
    n0 -.->|rebalance| n1
    n2 -.->|hash| n3
    n3 -.->|rebalance| n4
    n4 -.->|forward| n5
"#
    );
}

#[test]
fn completions_generate_for_every_shell() {
    let home = fresh("completions");
    for (shell, marker) in [
        ("bash", "_weir()"),
        ("zsh", "#compdef weir"),
        ("fish", "complete -c weir"),
    ] {
        let o = weir(&home, &["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let s = text(&o.stdout);
        assert!(s.contains(marker), "{shell}: {}", &s[..s.len().min(200)]);
        for cmd in ["run", "jobs", "status", "cancel", "savepoint", "visualize"] {
            assert!(s.contains(cmd), "{shell} completes {cmd}");
        }
    }
}

#[test]
fn unknown_commands_and_flags_are_usage_errors_with_a_suggestion() {
    let home = fresh("usage");
    let o = weir(&home, &["stauts", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).starts_with("error: unrecognized subcommand 'stauts'\n\n  tip: a similar subcommand exists: 'status'\n"), "{}", text(&o.stderr));
    let o = weir(&home, &["jobs", "--jsn"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).starts_with("error: unexpected argument '--jsn' found\n\n  tip: a similar argument exists: '--json'\n"), "{}", text(&o.stderr));
    let o = weir(
        &home,
        &[
            "run",
            "--example",
            "ticker",
            "--checkpoint-interval",
            "soon",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("\"soon\" is not a duration like 10s or 500ms"));
    let o = weir(
        &home,
        &["run", "--example", "ticker", "--checkpoint-interval", "1s"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        "weir run: --checkpoint-interval needs a state directory (--state-dir / WEIR_STATE_DIR) to keep checkpoints in\n"
    );
    let o = weir(&home, &["run", "--example", "tickr"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("possible values: demo, ticker"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn help_documents_exit_codes_and_every_command_has_examples() {
    let home = fresh("help");
    let o = weir(&home, &["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let h = text(&o.stdout);
    assert!(h.contains(weir::cli::EXIT_CODES_HELP), "{h}");
    for cmd in [
        "demo",
        "run",
        "jobs",
        "status",
        "cancel",
        "savepoint",
        "visualize",
        "cert",
        "local-cluster",
        "completions",
    ] {
        let o = weir(&home, &[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{cmd}");
        let h = text(&o.stdout);
        assert!(h.contains("\nExamples:\n  weir "), "{cmd}: {h}");
    }
}

#[test]
fn cert_writes_a_ca_and_node_certificates_with_private_keys_0600() {
    use std::os::unix::fs::PermissionsExt;
    let home = fresh("cert");
    let dir = home.join("certs");
    let d = dir.to_str().unwrap();
    let o = weir(&home, &["cert", "--dir", d, "node-a", "node-b"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ca.key",
            "ca.pem",
            "node-a.key",
            "node-a.pem",
            "node-b.key",
            "node-b.pem"
        ]
    );
    for key in ["ca.key", "node-a.key", "node-b.key"] {
        let mode = std::fs::metadata(dir.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let pem = std::fs::read_to_string(dir.join("node-a.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let o = weir(&home, &["cert", "--dir", d, "ca"]);
    assert_eq!(o.status.code(), Some(2), "a node may not be named ca");
    let o = weir(&home, &["cert", "--dir", d]);
    assert_eq!(o.status.code(), Some(2), "nodes are required");
}

/// The interpreter `weir run` would use, when it can import weir.
fn python_with_weir() -> Option<PathBuf> {
    let py = std::env::var_os("WEIR_PYTHON")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("VIRTUAL_ENV").map(|v| Path::new(&v).join("bin/python")))
        .unwrap_or_else(|| PathBuf::from("python3"));
    let ok = Command::new(&py)
        .args(["-c", "import weir._native"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "skipped: {} cannot import weir (source scripts/python-env.sh, or set WEIR_PYTHON)",
            py.display()
        );
    }
    ok.then_some(py)
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn visualize_prints_a_python_scripts_graph_without_running_it() {
    let Some(py) = python_with_weir() else { return };
    let home = fresh("pyviz");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .env("WEIR_LOG", "warn")
            .args(args)
            .env("WEIR_HOME", &home)
            .env("WEIR_PYTHON", &py)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let script = fixture("small_graph.py");
    let o = run(&["visualize", &script, "--format", "mermaid"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "flowchart LR\n    n0[\"from_iter\"]\n    n1[\"inc\"]\n    n2[\"collect\"]\n    n0 --> n1\n    n1 --> n2\n"
    );
    let o = run(&["visualize", &script, "--format", "dot"]);
    assert_eq!(
        text(&o.stdout),
        "digraph weir {\n    rankdir=LR;\n    n0 [label=\"from_iter\", shape=ellipse];\n    n1 [label=\"inc\", shape=ellipse];\n    n2 [label=\"collect\", shape=ellipse];\n    n0 -> n1;\n    n1 -> n2;\n}\n"
    );
    let o = run(&["visualize", &script, "--format", "svg", "--physical"]);
    let svg = text(&o.stdout);
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    let nodes = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("node"))
        .count();
    assert_eq!(nodes, 3, "{svg}");
}

#[test]
fn run_starts_a_python_script_with_the_ui_on_and_passes_its_arguments() {
    let Some(py) = python_with_weir() else { return };
    let home = fresh("pyrun");
    let o = Command::new(BIN)
        .env("WEIR_LOG", "warn")
        .args([
            "run",
            "--ui-port",
            "0",
            &fixture("ui_job.py"),
            "--flag",
            "x",
        ])
        .env("WEIR_HOME", &home)
        .env("WEIR_PYTHON", &py)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "[0, 2, 4, 6, 8, 10, 12, 14, 16, 18]\n[\"ui_job\"]\n[\"--flag\", \"x\"]\n"
    );
    let err = text(&o.stderr);
    assert!(
        err.starts_with("weir: job ui_job serving its UI at http://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("/#token="), "{err}");
}

#[test]
fn the_demo_runs_to_its_end_with_the_ui_on_and_exits_0() {
    let home = fresh("demo");
    let o = weir(&home, &["run", "--example", "demo", "--lines", "500"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.starts_with("word count: 5000 words, "), "{out}");
    assert!(out.contains("\ntop words:\n"), "{out}");
    let err = text(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("weir: job demo serving its UI at http://127.0.0.1:"),
        "{err}"
    );
    assert_eq!(
        json(&weir(&home, &["jobs", "--json"])),
        serde_json::json!([])
    );
}

#[test]
fn sigint_to_weir_run_reaches_the_python_script_and_its_exit_code_comes_back() {
    let Some(py) = python_with_weir() else { return };
    let home = fresh("pysigint");
    let mut child = Command::new(BIN)
        .env("WEIR_LOG", "warn")
        .args(["run", &fixture("py_ticker.py")])
        .env("WEIR_HOME", &home)
        .env("WEIR_PYTHON", &py)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("weir: job py_ticker serving its UI at http://127.0.0.1:"),
        "{line}"
    );
    let jobs = json(&weir(&home, &["jobs", "--json"]));
    assert_eq!(jobs[0]["name"], "py_ticker");
    assert_eq!(jobs[0]["state"], "running");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(exit_of(&mut child), Some(130));
    assert_eq!(
        json(&weir(&home, &["jobs", "--json"])),
        serde_json::json!([])
    );
    let left: Vec<_> = std::fs::read_dir(home.join("jobs")).unwrap().collect();
    assert_eq!(
        left.len(),
        0,
        "the script's job file is removed when it exits"
    );
}

#[test]
fn a_separate_metrics_port_serves_prometheus_text_and_a_bad_token_is_a_usage_error() {
    let home = fresh("metrics");
    let mut job = start(&home, &["--example", "ticker", "--metrics-port", "0"]);
    let mut line = String::new();
    job.stderr.read_line(&mut line).unwrap();
    let prefix = "weir: job ticker serving its metrics at ";
    assert!(line.starts_with(prefix), "{line:?}");
    let url = line[prefix.len()..].trim_end().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"),
        "{url}"
    );
    assert_ne!(url, format!("{}/metrics", job.url));
    let body = ureq::get(&url)
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(body.ends_with("# EOF\n"), "{body}");
    let o = weir(&home, &["cancel", "ticker"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(exit_of(&mut job.child), Some(130));
    let o = weir(&home, &["run", "--example", "ticker", "--token", "a b"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        "weir: job ticker: cannot serve the UI on 127.0.0.1:0: ops: the configured token must be non-empty visible ASCII\n"
    );
}

#[test]
fn run_passes_a_scripts_exit_code_through() {
    let home = fresh("exit7");
    let o = Command::new(BIN)
        .env("WEIR_LOG", "warn")
        .args(["run", "--no-ui", &fixture("exit7.py"), "a", "--b"])
        .env("WEIR_HOME", &home)
        .env("WEIR_PYTHON", "python3")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "['a', '--b']\n");
    let o = Command::new(BIN)
        .env("WEIR_LOG", "warn")
        .args(["run", "--no-ui", "/nonexistent/dir/job.py"])
        .env("WEIR_PYTHON", "/nonexistent/python")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr)
            .starts_with("weir: cannot start /nonexistent/python /nonexistent/dir/job.py: "),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn local_cluster_passes_each_node_its_settings_and_restarts_every_node_when_one_dies() {
    let home = fresh("local-cluster");
    let dir = home.join("cluster");
    // Node 1 of the first attempt dies; the second attempt runs every node to its end.
    let script = r#"if [ "$WEIR_EPOCH" = 1 ] && [ "$WEIR_NODE" = 1 ]; then exit 3; fi; echo "node $WEIR_NODE of $WEIR_NODES in attempt $WEIR_EPOCH at $WEIR_CLUSTER_DIR""#;
    let o = weir(
        &home,
        &[
            "local-cluster",
            "--nodes",
            "3",
            "--dir",
            dir.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let d = dir.display();
    assert_eq!(
        text(&o.stdout),
        format!(
            "node 0 of 3 in attempt 2 at {d}\nnode 1 of 3 in attempt 2 at {d}\nnode 2 of 3 in attempt 2 at {d}\n"
        )
    );
    assert!(
        text(&o.stderr).contains("every node finished in attempt 2 (1 restarts)"),
        "{}",
        text(&o.stderr)
    );
    // The nodes' certificates from one cluster CA, and the attempt record.
    for f in ["ca.pem", "node-0.pem", "node-1.key", "node-2.pem"] {
        assert!(dir.join("certs").join(f).is_file(), "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("fence/EPOCH"))
            .unwrap()
            .trim(),
        "2"
    );
    // A program that always fails gives up after --max-restarts, exit 1.
    let o = weir(
        &home,
        &[
            "local-cluster",
            "--nodes",
            "2",
            "--dir",
            dir.to_str().unwrap(),
            "--max-restarts",
            "2",
            "--",
            "false",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("gave up after 3 restarts; the last: node "),
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("ended with exit status: 1"),
        "{}",
        text(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(&home);
}

/// `weir status --cluster DIR --json`, parsed.
fn cluster_status(home: &Path, dir: &Path) -> (Option<i32>, serde_json::Value, String) {
    let o = weir(
        home,
        &["status", "--cluster", dir.to_str().unwrap(), "--json"],
    );
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o.status.code(), v, text(&o.stderr))
}

#[test]
fn status_and_cancel_operate_a_local_cluster_by_its_directory() {
    let home = fresh("cluster-ops");
    let dir = home.join("cluster");
    let d = dir.to_str().unwrap();
    // No supervisor ever ran there: not found.
    let (code, _, err) = cluster_status(&home, &dir);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("state"), "{err}");
    let mut lc = Command::new(BIN)
        .env("WEIR_LOG", "warn")
        .env("WEIR_HOME", &home)
        .args([
            "local-cluster",
            "--nodes",
            "2",
            "--dir",
            d,
            "--",
            "sleep",
            "60",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let running = loop {
        let (code, v, _) = cluster_status(&home, &dir);
        let nodes_up = v["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == 2 && n.iter().all(|n| n["alive"] == true));
        if code == Some(0) && v["state"] == "running" && nodes_up {
            break v;
        }
        assert!(Instant::now() < until, "never running: {v}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(running["epoch"], 1, "{running}");
    assert_eq!(running["restarts"], 0, "{running}");
    assert_eq!(running["cancel_requested"], false, "{running}");
    assert_eq!(running["latest_complete"], serde_json::Value::Null);
    assert_eq!(running["output_complete"], false);
    for (i, n) in running["nodes"].as_array().unwrap().iter().enumerate() {
        assert_eq!(n["node"], i);
        // `sleep` never joins: no address, never done, no checkpoint copies.
        assert_eq!(n["addr"], serde_json::Value::Null);
        assert_eq!(n["done"], false);
        assert_eq!(n["stored_checkpoints"], serde_json::json!([]));
    }
    let pids: Vec<u64> = running["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["pid"].as_u64().unwrap())
        .collect();
    let o = weir(&home, &["cancel", "--cluster", d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), format!("cluster {d}: cancelled\n"));
    let ended = lc.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(lc.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(ended.code(), Some(130), "{err}");
    assert!(err.contains("the job was cancelled in attempt 1"), "{err}");
    let (code, v, err) = cluster_status(&home, &dir);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["state"], "cancelled", "{v}");
    for n in v["nodes"].as_array().unwrap() {
        assert_eq!(n["alive"], false, "{v}");
        assert!(pids.contains(&n["pid"].as_u64().unwrap()));
    }
    // Nothing is running any more: a second cancel is refused.
    let o = weir(&home, &["cancel", "--cluster", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("the job is cancelled (attempt 1), not running"),
        "{}",
        text(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(&home);
}

/// A `weir` process in the background, killed when dropped.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A coordinator and its joined nodes, run as `weir` processes under `home`.
struct NetCluster {
    _coordinator: Background,
    _nodes: Vec<Background>,
    /// The coordinator's QUIC address.
    addr: String,
    /// Its UI's cluster page, when asked for.
    ui: Option<String>,
    /// The certificate folder (CA, coordinator, nodes, `client`).
    certs: PathBuf,
}

/// Makes certificates, starts `weir coordinator` (with `extra` flags) and `weir node` for each
/// of `nodes`, and waits until they all joined.
fn net_cluster(home: &Path, nodes: &[&str], extra: &[&str]) -> NetCluster {
    let certs = home.join("certs");
    let c = certs.to_str().unwrap();
    let mut names = vec!["coordinator", "client"];
    names.extend(nodes);
    let mut args = vec!["cert", "--dir", c];
    args.extend(&names);
    let o = weir(home, &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let spawn = |args: &[&str], out: Stdio| {
        Command::new(BIN)
            .env("WEIR_LOG", "warn")
            .env("WEIR_HOME", home)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let jobs = home.join("jobs-dir");
    let mut args = vec![
        "coordinator",
        "--listen",
        "127.0.0.1:0",
        "--certs",
        c,
        "--dir",
        jobs.to_str().unwrap(),
    ];
    args.extend(extra);
    let mut coordinator = Background(spawn(&args, Stdio::piped()));
    // The line it prints once it serves names the port (and the UI's address).
    let mut line = String::new();
    BufReader::new(coordinator.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let ui = line.split(", UI ").nth(1).map(|u| u.trim().to_owned());
    let nodes: Vec<Background> = nodes
        .iter()
        .map(|n| {
            let work = home.join(n);
            Background(spawn(
                &[
                    "node",
                    "--join",
                    &addr,
                    "--name",
                    n,
                    "--certs",
                    c,
                    "--data",
                    "127.0.0.1:0",
                    "--work-dir",
                    work.to_str().unwrap(),
                ],
                Stdio::null(),
            ))
        })
        .collect();
    let cluster = NetCluster {
        _coordinator: coordinator,
        _nodes: nodes,
        addr,
        ui,
        certs: certs.clone(),
    };
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, v, err) = cluster.status(home, c);
        if code == Some(0)
            && v["nodes"]
                .as_array()
                .is_some_and(|n| n.len() == names.len() - 2)
        {
            assert_eq!(v["coordinator"], "coordinator");
            return cluster;
        }
        assert!(Instant::now() < until, "{code:?} {v} {err}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl NetCluster {
    /// `weir status --cluster ADDR --certs CERTS --json`, parsed.
    fn status(&self, home: &Path, certs: &str) -> (Option<i32>, serde_json::Value, String) {
        let o = weir(
            home,
            &[
                "status",
                "--cluster",
                &self.addr,
                "--certs",
                certs,
                "--json",
            ],
        );
        let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
        (o.status.code(), v, text(&o.stderr))
    }
}

#[test]
fn nodes_join_a_coordinator_over_quic_and_run_submitted_jobs_restart_all() {
    let home = fresh("coordinator");
    let cluster = net_cluster(&home, &["node-a", "node-b"], &[]);
    let certs = cluster.certs.clone();
    let c = certs.to_str().unwrap();
    let addr = cluster.addr.clone();
    let status = |certs: &str| cluster.status(&home, certs);
    // Node 1 fails in attempt 1; both run again in attempt 2.
    let script = r#"echo "$WEIR_NODE of $WEIR_NODES on {name} in $WEIR_EPOCH"; if [ "$WEIR_EPOCH" = 1 ] && [ "$WEIR_NODE" = 1 ]; then echo lost >&2; exit 4; fi"#;
    let o = weir(
        &home,
        &[
            "run",
            "--cluster",
            &addr,
            "--certs",
            c,
            "--parallelism",
            "2",
            "--job-name",
            "echo",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "job echo: finished in attempt 2 (1 restarts)\n"
    );
    assert_eq!(
        text(&o.stderr),
        "weir run: job echo accepted\n\
         weir run: attempt 1 started on node-a, node-b\n\
         weir run: attempt 1 failed: node 1 (node-b) exited 4: lost; restarting every node\n\
         weir run: attempt 2 started on node-a, node-b\n\
         weir run: every node finished in attempt 2 (1 restarts)\n"
    );
    for (i, n) in ["node-a", "node-b"].iter().enumerate() {
        let log = home.join(n).join("logs/echo-e0002.stdout");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            format!("{i} of 2 on {n} in 2\n")
        );
    }
    let (code, v, err) = status(c);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["jobs"][0]["name"], "echo");
    assert_eq!(v["jobs"][0]["state"], "finished");
    assert_eq!(v["jobs"][0]["epoch"], 2);
    assert_eq!(
        v["jobs"][0]["nodes"],
        serde_json::json!(["node-a", "node-b"])
    );

    // A client with a certificate of another CA is refused by the TLS handshake.
    let other = home.join("other-ca");
    let o = weir(&home, &["cert", "--dir", other.to_str().unwrap(), "client"]);
    assert_eq!(o.status.code(), Some(0));
    let (code, _, err) = status(other.to_str().unwrap());
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.starts_with("weir status: coordinator coordinator: "),
        "{err}"
    );
    // And one without certificates is told what it needs.
    let o = weir(&home, &["status", "--cluster", &addr]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--cluster ADDR needs --certs DIR"),
        "{}",
        text(&o.stderr)
    );

    // A detached job runs on until it is cancelled; its nodes' programs are stopped.
    let o = weir(
        &home,
        &[
            "run",
            "--cluster",
            &addr,
            "--certs",
            c,
            "--parallelism",
            "2",
            "--detach",
            "--",
            "sleep",
            "60",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), format!("job sleep submitted to {addr}\n"));
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v, _) = status(c);
        if v["jobs"][1]["state"] == "running" {
            break;
        }
        assert!(Instant::now() < until, "{v}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = weir(&home, &["cancel", "--cluster", &addr, "--certs", c]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "job sleep: cancelled in attempt 1\n");
    let (_, v, _) = status(c);
    assert_eq!(v["jobs"][1]["state"], "cancelled");
    assert!(
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["running"].is_null()),
        "{v}"
    );
    let o = weir(
        &home,
        &["cancel", "--cluster", &addr, "--certs", c, "sleep"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "weir cancel: the coordinator refused: job \"sleep\" is cancelled, not running\n"
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn the_kubernetes_manifests_start_real_commands_with_flags_the_cli_accepts() {
    let home = fresh("k8s");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text_of = std::fs::read_to_string(root.join("deploy/kubernetes/weir.yaml")).unwrap();
    // The values the pods' environment gives `$(VAR)` in their arguments.
    let env = [
        ("$(POD_NAME)", "weir-node-0"),
        ("$(POD_IP)", "10.0.0.5"),
        ("$(WEIR_COORDINATOR)", "127.0.0.1:7070"),
        ("$(WEIR_COORDINATOR_NAME)", "weir-coordinator-0"),
    ];
    for (var, _) in &env[2..] {
        let key = &var[2..var.len() - 1];
        assert!(
            text_of.contains(&format!("  {key}: ")),
            "{key} not in the config map"
        );
    }
    let mut commands = Vec::new();
    for line in text_of.lines() {
        let Some(args) = line.trim().strip_prefix("args: ") else {
            continue;
        };
        let args: Vec<String> = serde_json::from_str(args).unwrap();
        let args: Vec<String> = args
            .iter()
            .map(|a| env.iter().fold(a.clone(), |a, (k, v)| a.replace(k, v)))
            .collect();
        // Every flag and value parses (clap checks them before it prints the help).
        let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
        with_help.push("--help");
        let o = weir(&home, &with_help);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o.stderr));
        commands.push(args[0].clone());
    }
    assert_eq!(commands, ["coordinator", "node"]);
    // Node pods have stable names from a headless service; keys are mounted owner-only.
    assert!(text_of.contains("clusterIP: None"));
    assert!(text_of.contains("serviceName: weir-node"));
    assert_eq!(
        text_of
            .matches("secret: {secretName: weir-certs, defaultMode: 0400}")
            .count(),
        2
    );
    assert!(text_of.contains("accessModes: [ReadWriteMany]"));
    let docker = std::fs::read_to_string(root.join("deploy/Dockerfile")).unwrap();
    assert!(docker.contains("cargo build --release --locked -p weir -p weir-bench"));
    let _ = std::fs::remove_dir_all(&home);
}

/// Headless Chromium from `scripts/chromium-env.sh` (which looks at `WEIR_CHROMIUM` and the
/// PATH, and installs Debian's package where it can); `None` when there is none.
fn chromium() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/chromium-env.sh");
    let out = Command::new("bash").arg(&script).output().ok()?;
    let path = PathBuf::from(text(&out.stdout).trim());
    path.is_file().then_some(path)
}

/// The `<tr>` element with `attrs` (e.g. `data-node="node-a"`) in a dumped DOM, whole.
fn row<'a>(dom: &'a str, attrs: &str) -> &'a str {
    let at = dom
        .find(attrs)
        .unwrap_or_else(|| panic!("no {attrs} in {dom}"));
    let start = dom[..at].rfind("<tr").unwrap();
    &dom[start..at + dom[at..].find("</tr>").unwrap()]
}

#[test]
fn the_coordinators_cluster_page_shows_its_nodes_and_where_each_subtask_runs_in_chromium() {
    let Some(bin) = chromium() else {
        eprintln!("SKIPPED: no chromium (set WEIR_CHROMIUM or run scripts/chromium-env.sh)");
        return;
    };
    let home = fresh("cluster-ui");
    let cluster = net_cluster(&home, &["node-a", "node-b", "node-c"], &["--ui-port", "0"]);
    let c = cluster.certs.to_str().unwrap();
    let o = weir(
        &home,
        &[
            "run",
            "--cluster",
            &cluster.addr,
            "--certs",
            c,
            "--parallelism",
            "2",
            "--job-name",
            "wide",
            "--detach",
            "--",
            "sleep",
            "60",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let until = Instant::now() + Duration::from_secs(30);
    while cluster.status(&home, c).1["jobs"][0]["state"] != "running" {
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = cluster
        .ui
        .clone()
        .expect("the coordinator printed its UI's address");
    let profile = home.join("chromium-profile");
    let out = Command::new(&bin)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dom = text(&out.stdout);
    assert!(dom.contains("coordinator coordinator"), "{dom}");
    // The nodes: two run the job, one is free.
    assert!(row(&dom, "data-node=\"node-a\"").contains("wide #0"));
    assert!(row(&dom, "data-node=\"node-b\"").contains("wide #1"));
    assert!(row(&dom, "data-node=\"node-c\"").contains("free"));
    // The job's placement: each subtask's node and the key groups it owns.
    let first = row(&dom, "data-job=\"wide\" data-index=\"0\"");
    assert!(
        first.contains("node-a") && first.contains("0..63"),
        "{first}"
    );
    let second = row(&dom, "data-job=\"wide\" data-index=\"1\"");
    assert!(
        second.contains("node-b") && second.contains("64..127"),
        "{second}"
    );
    assert!(dom.contains("sleep 60"), "{dom}");
    let o = weir(&home, &["cancel", "--cluster", &cluster.addr, "--certs", c]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let _ = std::fs::remove_dir_all(&home);
}
