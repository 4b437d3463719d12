//! Runs this binary's job subcommands as child processes for the crash harnesses: spawned
//! with their stdout and stderr logged per run, SIGKILLed after a delay, or waited for.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a run of the child ended.
pub enum Ended {
    /// Killed by the harness.
    Killed,
    /// Exited on its own with this status, stdout and stderr.
    Exited {
        /// Whether it exited with status 0.
        ok: bool,
        /// What it printed on stdout.
        stdout: String,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// Starts runs of one command line, logging each run's output under `logs`.
pub struct Runner {
    /// This binary.
    pub exe: PathBuf,
    /// The subcommand and its flags.
    pub args: Vec<OsString>,
    /// Where `run-NNN.stdout` and `run-NNN.stderr` go.
    pub logs: PathBuf,
    /// Runs started so far.
    pub runs: u32,
}

impl Runner {
    /// Starts the next run.
    pub fn spawn(&mut self) -> std::io::Result<Child> {
        self.runs += 1;
        let log = |what: &str| -> std::io::Result<Stdio> {
            let f = std::fs::File::create(self.logs.join(format!("run-{:03}.{what}", self.runs)))?;
            Ok(Stdio::from(f))
        };
        Command::new(&self.exe)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log("stdout")?)
            .stderr(log("stderr")?)
            .spawn()
    }

    /// The log `what` (`stdout`, `stderr`) of the latest run.
    pub fn read_log(&self, what: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("run-{:03}.{what}", self.runs)))
            .unwrap_or_default()
    }

    /// Lets `child` live `delay` (or until it exits), then SIGKILLs it.
    pub fn kill_after(&self, child: &mut Child, delay: Duration) -> std::io::Result<Ended> {
        let until = Instant::now() + delay;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(self.exited(status.success()));
            }
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(2)));
        }
        // SIGKILL; the child may have exited in between, which `wait` then reports.
        let _ = child.kill();
        let status = child.wait()?;
        match status.code() {
            Some(c) => Ok(self.exited(c == 0)),
            None => Ok(Ended::Killed),
        }
    }

    fn exited(&self, ok: bool) -> Ended {
        Ended::Exited {
            ok,
            stdout: self.read_log("stdout"),
            stderr: self.read_log("stderr"),
        }
    }

    /// Waits for `child` to finish, killing it after `limit`.
    pub fn finish(&self, child: &mut Child, limit: Duration) -> std::io::Result<Ended> {
        match self.kill_after(child, limit)? {
            Ended::Killed => Ok(Ended::Exited {
                ok: false,
                stdout: String::new(),
                stderr: format!("the last run did not finish within {limit:?}"),
            }),
            e => Ok(e),
        }
    }
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
