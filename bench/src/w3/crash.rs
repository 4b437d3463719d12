//! `weir-bench crash`: the crash harness of RELIABILITY S1, S3 and S5. It writes W3 input,
//! computes the reference windows in a plain loop, runs `w3-job` as a child process (this
//! binary), SIGKILLs it at seeded random moments (`--kills`, each run living
//! `--min-delay-ms..=--max-delay-ms`), restarts it on the same directories each time, lets the
//! last run finish and checks the committed output against the reference with
//! [`verify`](super::verify): `records lost duplicates reordered corrupt state_mismatches late
//! leftover_tmp parts_out_of_order`, all 0 when it holds each window once, in order, with its
//! sum. The exit code is 0 only when every count is 0, every requested kill landed and no run
//! failed on its own (its error is then `job_error`).
//!
//! - `--recovery-kills K` (S3): after the random kills, K more runs are each killed shortly
//!   after their start (uniformly within half a checkpoint interval);
//!   `recovery_kills_before_checkpoint` counts those killed before the newest complete
//!   checkpoint in the state directory changed, and `checkpoint_dirs` is how many checkpoint
//!   directories the state directory holds at the end (retention keeps 3).
//! - `--corrupt KIND` (S5): before the last run the newest complete checkpoint is damaged
//!   (`flip-byte` in a stage file, `truncate-manifest`, `delete-file`, `chmod-manifest`, which
//!   root reads anyway), the older complete ones fingerprinted first. The line adds
//!   `corruption_outcome`: `fallback` (an older checkpoint restored), `clear_error` (the run
//!   failed naming the damaged file or checkpoint), `undetected`, `silent_fresh_start` or
//!   `unclear_error`, and `older_checkpoint_files_changed` (those retention removed do not
//!   count). It passes on `fallback` with exact output or on `clear_error`, with no older file
//!   changed.
//! - `restores`, `restore_p50_ms` and `restore_p99_ms`: the runs that restored a checkpoint
//!   and how long their start took (read from each run's stderr).
//!
//! Each run's stdout and stderr, and a line per kill (its moment, and the newest complete
//! checkpoint when the run started and when it was killed), go to `logs/` in the work
//! directory, kept when the run does not pass.

use super::corrupt::{self, Corruption};
use super::events;
use super::verify::verify;
use crate::child::{Ended, Runner, json_string};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// The settings of a crash run.
#[derive(Debug, Clone)]
pub struct CrashArgs {
    /// Random kills.
    pub kills: u32,
    /// Kills right after a restart (S3), after the random ones.
    pub recovery_kills: u32,
    /// Events of the input (default: enough for the kills to land mid-run).
    pub events: Option<u64>,
    /// Seeds the input and the kill moments.
    pub seed: u64,
    /// Events per second the job's source is throttled to.
    pub rate: u64,
    /// The job's checkpoint interval.
    pub checkpoint_interval_ms: u64,
    /// The shortest time a run lives before its kill.
    pub min_delay_ms: u64,
    /// The longest time a run lives before its kill.
    pub max_delay_ms: u64,
    /// Where input, output and state go (default: a fresh temporary directory, removed after a
    /// passing run).
    pub workdir: Option<PathBuf>,
    /// Damages the newest complete checkpoint before the last run (S5).
    pub corrupt: Option<Corruption>,
}

/// The seeded source of kill moments.
struct Rng(u64);

impl Rng {
    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = events::mix(self.0);
        lo + self.0 % (hi.saturating_sub(lo) + 1)
    }
}

/// The directories of a crash run.
struct Dirs {
    input: PathBuf,
    output: PathBuf,
    state: PathBuf,
    logs: PathBuf,
}

/// How many checkpoint directories (`chk-*`, complete or not) `state` holds.
fn checkpoint_dirs(state: &Path) -> usize {
    std::fs::read_dir(state).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("chk-"))
            .count()
    })
}

/// The newest checkpoint in `state` whose files verify.
fn latest_checkpoint(state: &Path) -> Option<u64> {
    weir::engine::checkpoint::store::latest(state)
        .ok()
        .flatten()
        .map(|r| r.id)
}

/// The child runs of `w3-job` on the crash run's directories.
struct Harness {
    runner: Runner,
    dirs: Dirs,
}

impl Harness {
    fn spawn(&mut self) -> std::io::Result<Child> {
        self.runner.spawn()
    }
}

/// The restore times (ms) the runs' stderr logs under `logs` report, in run order.
fn restore_times(logs: &Path, runs: u32) -> Vec<f64> {
    (1..=runs)
        .filter_map(|r| {
            let text = std::fs::read_to_string(logs.join(format!("run-{r:03}.stderr"))).ok()?;
            text.lines().find_map(|l| {
                l.strip_prefix("w3-job: restored checkpoint ")?
                    .split_once(" in ")?
                    .1
                    .strip_suffix(" ms")?
                    .parse()
                    .ok()
            })
        })
        .collect()
}

/// The `q` quantile (nearest rank) of `xs`, `null` when empty.
fn quantile(xs: &[f64], q: f64) -> String {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => "null".to_owned(),
        n => format!("{:.3}", v[((n as f64 * q).ceil() as usize).clamp(1, n) - 1]),
    }
}

/// A checkpoint damaged before the last run (S5).
struct Damage {
    how: Corruption,
    id: u64,
    /// The file damaged.
    file: PathBuf,
    /// The older complete checkpoints' files, fingerprinted before.
    prints: std::collections::BTreeMap<PathBuf, String>,
}

impl Damage {
    /// What the last run made of it: `fallback` (it restored an older checkpoint),
    /// `clear_error` (it failed naming the damaged file or checkpoint), `undetected` (it
    /// restored the damaged one), `silent_fresh_start` (it restored none) or `unclear_error`.
    fn outcome(&self, failure: Option<&str>, restored: Option<u64>) -> &'static str {
        let chk = format!("chk-{:020}", self.id);
        match (failure, restored) {
            (Some(e), _) if e.contains(&chk) || e.contains(&*self.file.to_string_lossy()) => {
                "clear_error"
            }
            (Some(_), _) => "unclear_error",
            (None, None) => "silent_fresh_start",
            (None, Some(r)) if r < self.id => "fallback",
            (None, Some(_)) => "undetected",
        }
    }
}

/// The value of `"field":` in a JSON line of numbers (or `null`).
fn json_field(line: &str, field: &str) -> Option<u64> {
    let at = line.find(&format!("\"{field}\":"))? + field.len() + 3;
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

/// `crash`: runs the harness, prints its JSON line; 0 when the output is exact.
pub fn main(args: &CrashArgs) -> i32 {
    match run(args) {
        Ok(ok) => i32::from(!ok),
        Err(e) => {
            eprintln!("crash: {e}");
            2
        }
    }
}

fn run(args: &CrashArgs) -> Result<bool, String> {
    let t0 = Instant::now();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let (root, temporary) = crate::work_dir(args.workdir.as_deref(), "crash");
    let dirs = Dirs {
        input: root.join("events.csv"),
        output: root.join("output"),
        state: root.join("state"),
        logs: root.join("logs"),
    };
    let io = |what: &str, p: &Path| {
        let p = p.to_path_buf();
        let what = what.to_owned();
        move |e: std::io::Error| format!("{what} {}: {e}", p.display())
    };
    for d in [&dirs.output, &dirs.state, &dirs.logs] {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(io("cannot clear", d))?;
        }
        std::fs::create_dir_all(d).map_err(io("cannot create", d))?;
    }
    let mean_ms = (args.min_delay_ms + args.max_delay_ms) / 2;
    let n = args.events.unwrap_or_else(|| {
        // Enough for the random kills to land before the input runs out.
        args.rate * (u64::from(args.kills) * mean_ms + 1000) / 1000
    });
    events::write_file(&dirs.input, args.seed, n).map_err(io("cannot write", &dirs.input))?;
    let reference = events::reference((0..n).map(|i| events::event(args.seed, i)));

    let runner = Runner {
        exe,
        args: [
            "w3-job".into(),
            "--input".into(),
            dirs.input.clone().into_os_string(),
            "--output".into(),
            dirs.output.clone().into_os_string(),
            "--state-dir".into(),
            dirs.state.clone().into_os_string(),
            "--checkpoint-interval-ms".into(),
            args.checkpoint_interval_ms.to_string().into(),
            "--rate".into(),
            args.rate.to_string().into(),
        ]
        .to_vec(),
        logs: dirs.logs.clone(),
        runs: 0,
    };
    let mut h = Harness { runner, dirs };
    let mut rng = Rng(args.seed ^ 0x6b69_6c6c);
    let (mut kills, mut recovery_kills, mut before_checkpoint) = (0u32, 0u32, 0u32);
    let mut failure: Option<String> = None;
    let mut last: Option<String> = None;
    let mut kill_log = String::new();
    let spawn_err = |e: std::io::Error| format!("cannot start w3-job: {e}");
    let total = args.kills + args.recovery_kills;
    for k in 0..total {
        let recovery = k >= args.kills;
        let delay = if recovery {
            rng.between(0, args.checkpoint_interval_ms / 2)
        } else {
            rng.between(args.min_delay_ms, args.max_delay_ms)
        };
        let before = latest_checkpoint(&h.dirs.state);
        let mut child = h.spawn().map_err(spawn_err)?;
        match h
            .runner
            .kill_after(&mut child, Duration::from_millis(delay))
            .map_err(|e| format!("waiting for w3-job: {e}"))?
        {
            Ended::Killed => {
                kills += 1;
                let after = latest_checkpoint(&h.dirs.state);
                if recovery {
                    recovery_kills += 1;
                    if after == before {
                        before_checkpoint += 1;
                    }
                }
                kill_log.push_str(&format!(
                    "run {} killed after {delay} ms{}: newest complete checkpoint {} at start, {} at the kill\n",
                    h.runner.runs,
                    if recovery { " (recovery)" } else { "" },
                    opt(before),
                    opt(after)
                ));
            }
            Ended::Exited { ok, stdout, stderr } => {
                if !ok {
                    failure = Some(stderr.trim().to_owned());
                } else {
                    last = Some(stdout);
                }
                break;
            }
        }
    }
    // S5: the newest complete checkpoint is damaged before the last run.
    let mut damage: Option<Damage> = None;
    if let (Some(how), None, None) = (args.corrupt, &failure, &last) {
        let cannot = |e: std::io::Error| format!("cannot corrupt a checkpoint: {e}");
        let all = corrupt::complete(&h.dirs.state).map_err(cannot)?;
        let Some((&id, dir)) = all.last_key_value() else {
            return Err(format!(
                "no complete checkpoint in {} to corrupt: raise --min-delay-ms or --kills",
                h.dirs.state.display()
            ));
        };
        let older: Vec<PathBuf> = all.range(..id).map(|(_, p)| p.clone()).collect();
        let prints = corrupt::fingerprints(&older).map_err(cannot)?;
        let file = corrupt::apply(dir, how).map_err(cannot)?;
        damage = Some(Damage {
            how,
            id,
            file,
            prints,
        });
    }
    if failure.is_none() && last.is_none() {
        let mut child = h.spawn().map_err(spawn_err)?;
        let limit = Duration::from_secs(60 + 3 * n / args.rate.max(1));
        match h
            .runner
            .finish(&mut child, limit)
            .map_err(|e| format!("waiting for w3-job: {e}"))?
        {
            Ended::Exited {
                ok: true, stdout, ..
            } => last = Some(stdout),
            Ended::Exited { stderr, .. } => failure = Some(stderr.trim().to_owned()),
            Ended::Killed => failure = Some("the last run was killed".to_owned()),
        }
    }
    let restores = restore_times(&h.dirs.logs, h.runner.runs);
    let kills_path = h.dirs.logs.join("kills.txt");
    std::fs::write(&kills_path, &kill_log).map_err(io("cannot write", &kills_path))?;
    let v = verify(&h.dirs.output, &reference).map_err(io("cannot read", &h.dirs.output))?;
    let stdout = last.unwrap_or_default();
    let all_kills = kills == total;
    let restored = json_field(&stdout, "restored_from");
    let (ok, damage_json) = match &damage {
        None => (v.exact() && all_kills && failure.is_none(), String::new()),
        Some(d) => {
            let outcome = d.outcome(failure.as_deref(), restored);
            let changed = corrupt::changed(&d.prints);
            let passed = match outcome {
                "fallback" => v.exact(),
                "clear_error" => true,
                _ => false,
            };
            (
                passed && all_kills && changed == 0,
                format!(
                    ",\"corruption\":\"{}\",\"corrupted_checkpoint\":{},\"corruption_outcome\":\"{outcome}\",\"older_checkpoint_files\":{},\"older_checkpoint_files_changed\":{changed}",
                    d.how.name(),
                    d.id,
                    d.prints.len()
                ),
            )
        }
    };
    println!(
        "{{\"workload\":\"crash\",\"kills\":{kills},\"kills_requested\":{total},\"recovery_kills\":{recovery_kills},\"recovery_kills_before_checkpoint\":{before_checkpoint},\"runs\":{},\"events\":{n},\"windows_expected\":{},\"records\":{},\"lost\":{},\"duplicates\":{},\"reordered\":{},\"corrupt\":{},\"state_mismatches\":{},\"late\":{},\"leftover_tmp\":{},\"parts_out_of_order\":{},\"restored_from\":{},\"checkpoints_completed_last_run\":{},\"checkpoint_dirs\":{},\"restores\":{},\"restore_p50_ms\":{},\"restore_p99_ms\":{},\"seconds\":{:.3},\"job_error\":{}{damage_json}}}",
        h.runner.runs,
        reference.len(),
        v.records,
        v.lost,
        v.duplicates,
        v.reordered,
        v.corrupt,
        v.state_mismatches,
        v.late,
        v.leftover_tmp,
        v.parts_out_of_order,
        opt(restored),
        opt(json_field(&stdout, "checkpoints_completed")),
        checkpoint_dirs(&h.dirs.state),
        restores.len(),
        quantile(&restores, 0.5),
        quantile(&restores, 0.99),
        t0.elapsed().as_secs_f64(),
        failure
            .as_deref()
            .map_or_else(|| "null".to_owned(), json_string),
    );
    if !all_kills && failure.is_none() {
        eprintln!(
            "crash: the job finished after {kills} of {total} kills: lower --rate or raise --events"
        );
    }
    if let Some(f) = &failure {
        eprintln!("crash: a run of w3-job failed on its own: {f}");
    }
    if ok && temporary {
        let _ = std::fs::remove_dir_all(&root);
    } else if !ok {
        eprintln!(
            "crash: input, output, state and logs kept in {}",
            root.display()
        );
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("weir-crash-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn kill_moments_are_seeded_and_in_range() {
        let (mut a, mut b) = (Rng(5), Rng(5));
        let xs: Vec<u64> = (0..100).map(|_| a.between(100, 500)).collect();
        assert_eq!(
            xs,
            (0..100).map(|_| b.between(100, 500)).collect::<Vec<_>>()
        );
        assert!(xs.iter().all(|x| (100..=500).contains(x)));
        assert!(xs.iter().any(|&x| x < 200) && xs.iter().any(|&x| x > 400));
        assert_eq!(Rng(1).between(3, 3), 3);
    }

    #[test]
    fn restore_times_come_from_the_runs_logs() {
        let d = dir("restores");
        let log = |r: u32, text: &str| {
            std::fs::write(d.join(format!("run-{r:03}.stderr")), text).unwrap();
        };
        log(1, "");
        log(2, "w3-job: restored checkpoint 4 in 12.500 ms\n");
        log(
            3,
            "w3-job: restored checkpoint 9 in 3.250 ms\nw3-job failed: boom\n",
        );
        let t = restore_times(&d, 4);
        assert_eq!(t, [12.5, 3.25]);
        assert_eq!(quantile(&t, 0.5), "3.250");
        assert_eq!(quantile(&t, 0.99), "12.500");
        assert_eq!(quantile(&[], 0.5), "null");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn json_fields_and_strings() {
        let line = "{\"a\":1,\"restored_from\":null,\"checkpoints_completed\":12}";
        assert_eq!(json_field(line, "a"), Some(1));
        assert_eq!(json_field(line, "restored_from"), None);
        assert_eq!(json_field(line, "checkpoints_completed"), Some(12));
        assert_eq!(json_string("a \"b\"\n\\"), "\"a \\\"b\\\"\\n\\\\\"");
    }
}
