//! The exit codes of `weir` and of jobs run through `weir::cli`.

/// What a `weir` command or a job ended with; `code()` is the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command succeeded, the job finished.
    Ok,
    /// 1: the job (or the request) failed.
    Failed,
    /// 2: bad command line or settings.
    Usage,
    /// 3: no such job, or its process cannot be reached.
    NotFound,
    /// 4: the job refused the call (missing or wrong token).
    Refused,
    /// 130: the job was cancelled (Ctrl-C, SIGTERM or `weir cancel`).
    Cancelled,
    /// A script's own exit code, passed through by `weir run` (128 + N: ended by signal N).
    Child(u8),
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Failed => 1,
            Self::Usage => 2,
            Self::NotFound => 3,
            Self::Refused => 4,
            Self::Cancelled => 130,
            Self::Child(c) => c,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

/// The exit-code table printed by `weir --help` and documented in docs/cli.md.
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0    success (the job finished)
  1    the job failed, or the request failed
  2    usage error (unknown command or flag, bad value)
  3    job not found, or its process not reachable
  4    refused: missing or wrong token
  130  the job was cancelled (Ctrl-C, SIGTERM, weir cancel)";
