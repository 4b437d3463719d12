//! stdin and stdout through a child process (the `pipe` example): EOF on stdin completes the
//! job, a closed stdout (`| head`) cancels it and the process exits 0, a bad JSON line fails
//! it naming the stage and the offset.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `pipe` example next to this test binary (cargo builds examples with the tests).
fn pipe() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let p = dir.join("examples").join("pipe");
    assert!(
        p.exists(),
        "{} is not built: `cargo test -p weir-connectors` and nextest build it, a run limited \
         to `--test stdio` does not (`cargo build -p weir-connectors --example pipe`)",
        p.display()
    );
    p
}

fn spawn(args: &[&str]) -> Child {
    Command::new(pipe())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` at most 20 s (killing it then).
fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the child did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the pipe on `input`: (exit status, stdout, stderr).
fn run(args: &[&str], input: &[u8]) -> (ExitStatus, String, String) {
    let mut child = spawn(args);
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    feeder.join().unwrap();
    (wait(&mut child), out, err)
}

#[test]
fn lines_are_copied_until_eof_on_stdin() {
    let (status, out, err) = run(&[], b"alpha\nbeta\r\n\nlast without newline");
    assert_eq!((status.code(), err.as_str()), (Some(0), ""));
    assert_eq!(out, "alpha\nbeta\n\nlast without newline\n");
    let (status, out, _) = run(&[], b"");
    assert_eq!((status.code(), out.as_str()), (Some(0), ""));
}

#[test]
fn json_lines_are_decoded_and_encoded_again() {
    let (status, out, err) = run(&["json"], b"{\"type\": \"a\", \"n\": 1}\n[1, 2]\n\"s\"\n");
    assert_eq!((status.code(), err.as_str()), (Some(0), ""));
    // serde_json::Value keeps object keys sorted.
    assert_eq!(out, "{\"n\":1,\"type\":\"a\"}\n[1,2]\n\"s\"\n");
}

#[test]
fn a_bad_json_line_fails_the_job_after_the_lines_before_it() {
    let (status, out, err) = run(&["json"], b"1\n{oops\n2\n");
    assert_eq!(status.code(), Some(1));
    assert_eq!(out, "1\n");
    assert_eq!(
        err,
        "pipe: stage 'stdin#0' failed on element {oops: bad frame from stdin at byte 2: invalid JSON: key must be a string at line 1 column 2\n"
    );
}

#[test]
fn a_closed_stdout_cancels_the_job_and_the_process_exits_zero() {
    let mut child = spawn(&[]);
    let mut stdin = child.stdin.take().unwrap();
    // An endless producer, as `cat big-file` or `yes`: it stops when the pipe breaks.
    let feeder = std::thread::spawn(move || {
        let line = b"the same line again\n".repeat(1000);
        let mut sent = 0u64;
        while stdin.write_all(&line).is_ok() {
            sent += line.len() as u64;
        }
        sent
    });
    let mut first = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut first).unwrap();
    assert_eq!(first, "the same line again\n");
    drop(out); // `head -1` exits
    let started = Instant::now();
    let status = wait(&mut child);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!((status.code(), err.as_str()), (Some(0), ""));
    assert!(started.elapsed() < Duration::from_secs(10));
    // The child's exit closed its stdin, so the producer stopped too.
    let sent = feeder.join().unwrap();
    assert!(sent > 0);
}
