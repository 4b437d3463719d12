//! Running a Python script in its own interpreter: which Python, the `WEIR_*` environment, and
//! signal forwarding (SIGINT, SIGTERM, SIGHUP reach the child; its exit status becomes ours).

use super::exit::Exit;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// The interpreter: `$WEIR_PYTHON`, else the active virtual environment's, else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("WEIR_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(v) = std::env::var_os("VIRTUAL_ENV").filter(|p| !p.is_empty()) {
        let p = Path::new(&v).join("bin").join("python");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("python3")
}

/// The exit code a child's status maps to: its own code, or 128 + the signal that ended it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(s)) => u8::try_from(128 + s).unwrap_or(1),
        (None, None) => 1,
    }
}

/// Runs `script args..` under [`python`] with `env` added; returns the child's exit code.
///
/// When stdin is a terminal the child shares our process group (so it can read the terminal
/// and gets Ctrl-C from it directly) and only SIGTERM and SIGHUP are forwarded; otherwise it gets
/// its own group and SIGINT is forwarded too, so `kill -INT` of `weir` cancels the job once.
pub fn run_script(script: &Path, args: &[OsString], env: &[(&str, String)]) -> Result<u8, String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let py = python();
    let mut cmd = Command::new(&py);
    cmd.arg(script).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let shared_group = std::io::stdin().is_terminal();
    if !shared_group {
        cmd.process_group(0);
    }
    let forwarded: &[i32] = if shared_group {
        &[SIGTERM, SIGHUP]
    } else {
        &[SIGINT, SIGTERM, SIGHUP]
    };
    // Registered before the spawn so a signal in between is not lost; SIGINT is caught (not
    // fatal to us) in both cases so the child's own exit status is what we report.
    let mut catch = forwarded.to_vec();
    if shared_group {
        catch.push(SIGINT);
    }
    let mut signals = signal_hook::iterator::Signals::new(&catch)
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {} {}: {e}", py.display(), script.display()))?;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let handle = signals.handle();
    let forward: Vec<i32> = forwarded.to_vec();
    let t = std::thread::spawn(move || {
        for s in signals.forever() {
            if forward.contains(&s)
                && let Ok(sig) = nix::sys::signal::Signal::try_from(s)
            {
                let _ = nix::sys::signal::kill(pid, sig);
            }
        }
    });
    let status = child.wait();
    handle.close();
    let _ = t.join();
    let status = status.map_err(|e| format!("waiting for {}: {e}", script.display()))?;
    Ok(exit_code(status))
}

/// The job name of a script: its file stem.
pub fn script_name(script: &Path) -> String {
    script
        .file_stem()
        .map_or_else(|| "job".to_owned(), |s| s.to_string_lossy().into_owned())
}

/// A failure to start the child, as an exit.
pub fn start_failed(msg: &str) -> Exit {
    eprintln!("weir: {msg}");
    Exit::Failed
}
