//! Job files: each serving process writes `$WEIR_HOME/jobs/<pid>.json` (`{"pid","url","token",
//! "started_at_ms"}`, mode 0600) so `weir jobs` finds it, and removes it at shutdown.
//! [`list`] reads the folder and drops the files of processes that are gone.

use crate::OpsError;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// What a serving process tells the programs that look for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFile {
    /// The process id.
    pub pid: u32,
    /// Base URL of its API and UI (`http://127.0.0.1:port`).
    pub url: String,
    /// Bearer token of its mutating calls.
    pub token: String,
    /// When the server started (Unix milliseconds).
    pub started_at_ms: u64,
}

/// The folder holding `jobs/`: `$WEIR_HOME`, else `$XDG_RUNTIME_DIR/weir`, else
/// `$HOME/.local/state/weir`.
pub fn weir_home() -> Result<PathBuf, OpsError> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(h) = var("WEIR_HOME") {
        return Ok(h);
    }
    if let Some(x) = var("XDG_RUNTIME_DIR") {
        return Ok(x.join("weir"));
    }
    var("HOME")
        .map(|h| h.join(".local").join("state").join("weir"))
        .ok_or(OpsError::NoHome)
}

/// The folder of job files under `home`.
pub fn jobs_dir(home: &Path) -> PathBuf {
    home.join("jobs")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OpsError + '_ {
    move |source| OpsError::JobFile {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `job` as `<home>/jobs/<pid>.json`, readable and writable only by its user; returns
/// the file's path. The file is written whole under a temporary name, then renamed.
pub fn write(home: &Path, job: &JobFile) -> Result<PathBuf, OpsError> {
    let dir = jobs_dir(home);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let path = dir.join(format!("{}.json", job.pid));
    let tmp = dir.join(format!(".{}.json.tmp", job.pid));
    let body = serde_json::to_vec(job).map_err(|e| OpsError::JobFile {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(&body).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

/// Whether process `pid` is alive (Linux: `/proc/<pid>` exists; elsewhere assumed alive).
pub fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// The job files under `home` whose process is alive, by pid; a missing folder is no jobs,
/// an unreadable or malformed file is skipped (with a warning).
pub fn list_in(home: &Path) -> Result<Vec<JobFile>, OpsError> {
    let dir = jobs_dir(home);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(io(&dir))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let job: JobFile = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping an unreadable job file");
                continue;
            }
        };
        if pid_alive(job.pid) {
            out.push(job);
        }
    }
    out.sort_by_key(|j| j.pid);
    Ok(out)
}

/// The job files of live processes under [`weir_home`].
pub fn list() -> Result<Vec<JobFile>, OpsError> {
    list_in(&weir_home()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("weir-ops-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn written_files_are_listed_private_and_dead_pids_dropped() {
        let h = home("jobfile");
        assert_eq!(list_in(&h).unwrap(), vec![]);
        let me = JobFile {
            pid: std::process::id(),
            url: "http://127.0.0.1:1".into(),
            token: "t".into(),
            started_at_ms: 7,
        };
        let p = write(&h, &me).unwrap();
        assert_eq!(p, h.join("jobs").join(format!("{}.json", me.pid)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // A pid beyond Linux's pid_max is never alive.
        let dead = JobFile {
            pid: 4_194_305,
            ..me.clone()
        };
        write(&h, &dead).unwrap();
        std::fs::write(h.join("jobs").join("junk.json"), b"{not json").unwrap();
        assert_eq!(list_in(&h).unwrap(), vec![me]);
        let _ = std::fs::remove_dir_all(&h);
    }
}
