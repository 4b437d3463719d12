//! `weir-bench crash-cluster --nodes N --kills K`: RELIABILITY S18 on a local cluster. It
//! writes W3 input, computes the reference windows in a plain loop, runs `w3-job --nodes N`
//! (this binary) as a child, and K times waits a seeded random delay
//! (`--min-delay-ms..=--max-delay-ms`) into the current attempt and SIGKILLs one of its node
//! processes, chosen at random; the job restarts every node from the newest checkpoint all of
//! them completed. Once the job finished, the committed output of every node is checked
//! against the reference with [`verify_all`]: one JSON line with `kills records lost
//! duplicates corrupt state_mismatches` (and `reordered late leftover_tmp
//! parts_out_of_order attempts`), exit code 0 only when every count is 0, every kill landed
//! on a running attempt and the job succeeded.

use super::cluster::{output_dirs, read_pids};
use super::events;
use super::verify::verify_all;
use crate::child::{Ended, Runner, json_string};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The settings of a cluster crash run.
#[derive(Debug, Clone)]
pub struct Args {
    /// Node processes.
    pub nodes: usize,
    /// SIGKILLs of a random node.
    pub kills: u32,
    /// Events of the input.
    pub events: Option<u64>,
    /// Seeds the input, the kill moments and the victims.
    pub seed: u64,
    /// Events per second over all nodes.
    pub rate: u64,
    /// The job's checkpoint interval.
    pub checkpoint_interval_ms: u64,
    /// The shortest time an attempt lives before its kill.
    pub min_delay_ms: u64,
    /// The longest time an attempt lives before its kill.
    pub max_delay_ms: u64,
    /// Where everything goes.
    pub workdir: Option<PathBuf>,
    /// A killed node restarts with an empty local state directory.
    pub fresh_disk: bool,
}

/// Seeded draws.
struct Rng(u64);

impl Rng {
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = events::mix(self.0);
        lo + self.0 % (hi.saturating_sub(lo) + 1)
    }
}

/// Waits until the job runs attempt `after + 1` or later (its pids recorded); its epoch and
/// pids, `None` once the job exited or `limit` passed.
fn next_attempt(
    state: &Path,
    after: u64,
    job: &mut std::process::Child,
    limit: Duration,
) -> Option<(u64, Vec<u32>)> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some((e, pids)) = read_pids(state)
            && e > after
        {
            return Some((e, pids));
        }
        if job.try_wait().ok().flatten().is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// SIGKILLs process `pid`; whether it was there to kill.
fn sigkill(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `crash-cluster`: runs the harness, prints its JSON line; 0 when exact.
pub fn main(args: &Args) -> i32 {
    match run(args) {
        Ok(ok) => i32::from(!ok),
        Err(e) => {
            eprintln!("crash-cluster: {e}");
            2
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    let t0 = Instant::now();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let (root, temporary) = crate::work_dir(args.workdir.as_deref(), "crash-cluster");
    let io = |what: &str, p: &Path| {
        let p = p.to_path_buf();
        let what = what.to_owned();
        move |e: std::io::Error| format!("{what} {}: {e}", p.display())
    };
    let (input, output, state, logs) = (
        root.join("events.csv"),
        root.join("output"),
        root.join("state"),
        root.join("logs"),
    );
    for d in [&output, &state, &logs] {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(io("cannot clear", d))?;
        }
        std::fs::create_dir_all(d).map_err(io("cannot create", d))?;
    }
    let mean_ms = (args.min_delay_ms + args.max_delay_ms) / 2;
    // Enough for the kills to land mid-run: each attempt lives its delay, and a restart of
    // every node takes about a second more of the rate's events.
    let n = args
        .events
        .unwrap_or_else(|| args.rate * (u64::from(args.kills) * (mean_ms + 1000) + 2000) / 1000);
    events::write_file(&input, args.seed, n).map_err(io("cannot write", &input))?;
    let reference = events::reference((0..n).map(|i| events::event(args.seed, i)));
    let mut runner = Runner {
        exe,
        args: [
            "w3-job".into(),
            "--input".into(),
            input.clone().into_os_string(),
            "--output".into(),
            output.clone().into_os_string(),
            "--state-dir".into(),
            state.clone().into_os_string(),
            "--checkpoint-interval-ms".into(),
            args.checkpoint_interval_ms.to_string().into(),
            "--rate".into(),
            args.rate.to_string().into(),
            "--nodes".into(),
            args.nodes.to_string().into(),
        ]
        .into_iter()
        .chain(args.fresh_disk.then(|| "--fresh-disk".into()))
        .collect(),
        logs: logs.clone(),
        runs: 0,
    };
    let mut job = runner
        .spawn()
        .map_err(|e| format!("cannot start w3-job: {e}"))?;
    let mut rng = Rng(args.seed ^ 0x6e6f_6465);
    let mut landed = 0u32;
    let mut epoch = 0u64;
    let mut kill_log = String::new();
    for k in 0..args.kills {
        let Some((e, pids)) = next_attempt(&state, epoch, &mut job, Duration::from_secs(60)) else {
            break;
        };
        epoch = e;
        let delay = rng.between(args.min_delay_ms, args.max_delay_ms);
        std::thread::sleep(Duration::from_millis(delay));
        let victim = rng.between(0, pids.len() as u64 - 1) as usize;
        if job.try_wait().ok().flatten().is_some() {
            break;
        }
        if sigkill(pids[victim]) {
            landed += 1;
            kill_log.push_str(&format!(
                "kill {} attempt {e} node {victim} pid {} after {delay} ms\n",
                k + 1,
                pids[victim]
            ));
        }
    }
    let _ = std::fs::write(logs.join("kills.log"), &kill_log);
    let limit = Duration::from_millis(
        60_000 + n * 1000 / args.rate.max(1) * 3 + u64::from(args.kills) * 5_000,
    );
    let ended = runner
        .finish(&mut job, limit)
        .map_err(|e| format!("waiting for w3-job: {e}"))?;
    let (job_ok, stdout, stderr) = match ended {
        Ended::Exited { ok, stdout, stderr } => (ok, stdout, stderr),
        Ended::Killed => (false, String::new(), "killed".to_owned()),
    };
    let field = |name: &str| {
        let key = format!("\"{name}\":");
        stdout
            .find(&key)
            .and_then(|at| {
                let rest = &stdout[at + key.len()..];
                rest[..rest.find([',', '}']).unwrap_or(rest.len())]
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    let (attempts, fresh_disks, from_store) = (
        field("attempts"),
        field("fresh_disks"),
        field("restores_from_store"),
    );
    let v = verify_all(&output_dirs(&output, args.nodes), &reference)
        .map_err(|e| format!("cannot read the output: {e}"))?;
    let ok = v.exact() && job_ok && landed == args.kills;
    let job_error = if job_ok {
        "null".to_owned()
    } else {
        json_string(stderr.lines().last().unwrap_or("failed"))
    };
    println!(
        "{{\"workload\":\"crash_cluster\",\"nodes\":{},\"kills\":{landed},\"kills_requested\":{},\"events\":{n},\"windows\":{},\"records\":{},\"lost\":{},\"duplicates\":{},\"reordered\":{},\"corrupt\":{},\"state_mismatches\":{},\"late\":{},\"leftover_tmp\":{},\"parts_out_of_order\":{},\"attempts\":{attempts},\"fresh_disks\":{fresh_disks},\"restores_from_store\":{from_store},\"seconds\":{:.3},\"job_error\":{job_error},\"ok\":{ok}}}",
        args.nodes,
        args.kills,
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
        t0.elapsed().as_secs_f64(),
    );
    if ok && temporary {
        let _ = std::fs::remove_dir_all(&root);
    } else if !ok {
        eprintln!("crash-cluster: kept {} for inspection", root.display());
    }
    Ok(ok)
}
