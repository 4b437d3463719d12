//! `weir-bench crash-entities`: writes seeded `entity_id,amount` commands, computes every
//! entity's balance and event count in a plain loop, runs `entities-job` as a child process
//! (this binary), SIGKILLs it at seeded random moments (`--kills`, each run living
//! `--min-delay-ms..=--max-delay-ms`), restarts it on the same state directory each time, lets
//! the last run finish, and compares its output with the reference: `lost_events` (events the
//! reference has and the journal lacks), `duplicate_events` (the other way), and
//! `state_mismatches` (entities whose line is missing, extra or differs). The exit code is 0
//! only when all three are 0, every kill landed and no run failed on its own.

use super::job::Account;
use crate::child::{Ended, Runner, json_string};
use crate::w3::events::mix;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The settings of a crash run.
#[derive(Debug, Clone)]
pub struct CrashArgs {
    /// Random kills.
    pub kills: u32,
    /// Commands of the input (default: enough for the kills to land mid-run).
    pub commands: Option<u64>,
    /// Distinct entity ids.
    pub entities: u32,
    /// Seeds the input and the kill moments.
    pub seed: u64,
    /// Commands per second the job reads.
    pub rate: u64,
    /// The job's checkpoint interval.
    pub checkpoint_interval_ms: u64,
    /// The shortest life of a run before its kill.
    pub min_delay_ms: u64,
    /// The longest life of a run before its kill.
    pub max_delay_ms: u64,
    /// Where everything goes (default: a temporary directory, removed after a passing run).
    pub workdir: Option<PathBuf>,
}

/// Command `i` of the input for `seed`: an entity and an amount in -100..=100.
pub fn command(seed: u64, i: u64, entities: u32) -> (u32, i64) {
    let h = mix(seed ^ mix(i));
    let entity = (h % u64::from(entities)) as u32;
    let amount = ((h >> 32) % 201) as i64 - 100;
    (entity, amount)
}

/// What a finished run's output says, or the reference: entity id to its account.
pub type Accounts = BTreeMap<u32, Account>;

/// Writes `n` commands to `path`; returns the reference accounts.
pub fn write_input(path: &Path, seed: u64, n: u64, entities: u32) -> std::io::Result<Accounts> {
    let mut text = String::with_capacity(n as usize * 8);
    let mut reference = Accounts::new();
    for i in 0..n {
        let (e, a) = command(seed, i, entities);
        text.push_str(&format!("{e},{a}\n"));
        let acct = reference.entry(e).or_default();
        acct.balance += a;
        acct.events += 1;
    }
    std::fs::write(path, text)?;
    Ok(reference)
}

/// Reads an `entity_id,balance,events` output file.
pub fn read_output(path: &Path) -> Result<Accounts, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Accounts::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let bad = || format!("{} line {}: {line:?}", path.display(), n + 1);
        let [id, balance, events] = f[..] else {
            return Err(bad());
        };
        out.insert(
            id.parse().map_err(|_| bad())?,
            Account {
                balance: balance.parse().map_err(|_| bad())?,
                events: events.parse().map_err(|_| bad())?,
            },
        );
    }
    Ok(out)
}

/// Lost events, duplicate events and mismatched entities of `got` against `want`.
pub fn compare(want: &Accounts, got: &Accounts) -> (u64, u64, u64) {
    let (mut lost, mut dup, mut mismatches) = (0, 0, 0);
    for id in want
        .keys()
        .chain(got.keys().filter(|k| !want.contains_key(k)))
    {
        let w = want.get(id).copied().unwrap_or_default();
        let g = got.get(id).copied();
        let gv = g.unwrap_or_default();
        lost += w.events.saturating_sub(gv.events);
        dup += gv.events.saturating_sub(w.events);
        if g != Some(w) {
            mismatches += 1;
        }
    }
    (lost, dup, mismatches)
}

/// `crash-entities`: runs the harness, prints its JSON line; 0 when exact.
pub fn main(args: &CrashArgs) -> i32 {
    match run(args) {
        Ok(ok) => i32::from(!ok),
        Err(e) => {
            eprintln!("crash-entities: {e}");
            2
        }
    }
}

fn run(args: &CrashArgs) -> Result<bool, String> {
    let t0 = Instant::now();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let (root, temporary) = crate::work_dir(args.workdir.as_deref(), "crash-entities");
    let (input, output, state, logs) = (
        root.join("commands.csv"),
        root.join("accounts.csv"),
        root.join("state"),
        root.join("logs"),
    );
    for d in [&state, &logs] {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(|e| format!("cannot clear {}: {e}", d.display()))?;
        }
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let _ = std::fs::remove_file(&output);
    let mean_ms = (args.min_delay_ms + args.max_delay_ms) / 2;
    let n = args
        .commands
        .unwrap_or_else(|| args.rate * (u64::from(args.kills) * mean_ms + 1000) / 1000);
    let reference = write_input(&input, args.seed, n, args.entities)
        .map_err(|e| format!("cannot write {}: {e}", input.display()))?;
    let mut runner = Runner {
        exe,
        args: vec![
            "entities-job".into(),
            "--input".into(),
            input.clone().into_os_string(),
            "--output".into(),
            output.clone().into_os_string(),
            "--state-dir".into(),
            state.clone().into_os_string(),
            "--rate".into(),
            args.rate.to_string().into(),
            "--checkpoint-interval-ms".into(),
            args.checkpoint_interval_ms.to_string().into(),
        ],
        logs: logs.clone(),
        runs: 0,
    };
    let mut rng = mix(args.seed ^ 0x6b69_6c6c);
    let mut between = |lo: u64, hi: u64| {
        rng = mix(rng);
        lo + rng % (hi.saturating_sub(lo) + 1)
    };
    let (mut kills, mut failure, mut finished) = (0u32, None::<String>, false);
    let spawn_err = |e: std::io::Error| format!("cannot start entities-job: {e}");
    for _ in 0..args.kills {
        let delay = between(args.min_delay_ms, args.max_delay_ms);
        let mut child = runner.spawn().map_err(spawn_err)?;
        match runner
            .kill_after(&mut child, Duration::from_millis(delay))
            .map_err(|e| format!("waiting for entities-job: {e}"))?
        {
            Ended::Killed => kills += 1,
            Ended::Exited { ok, stderr, .. } => {
                if ok {
                    finished = true;
                } else {
                    failure = Some(stderr.trim().to_owned());
                }
                break;
            }
        }
    }
    if failure.is_none() && !finished {
        let mut child = runner.spawn().map_err(spawn_err)?;
        let limit = Duration::from_secs(60 + 3 * n / args.rate.max(1));
        match runner
            .finish(&mut child, limit)
            .map_err(|e| format!("waiting for entities-job: {e}"))?
        {
            Ended::Exited { ok: true, .. } => {}
            Ended::Exited { stderr, .. } => failure = Some(stderr.trim().to_owned()),
            Ended::Killed => failure = Some("the last run was killed".to_owned()),
        }
    }
    let got = match &failure {
        None => read_output(&output)?,
        Some(_) => Accounts::new(),
    };
    let (lost, dup, mismatches) = compare(&reference, &got);
    let all_kills = kills == args.kills;
    let ok = failure.is_none() && all_kills && lost == 0 && dup == 0 && mismatches == 0;
    println!(
        "{{\"workload\":\"crash_entities\",\"kills\":{kills},\"kills_requested\":{},\"runs\":{},\"entities\":{},\"commands\":{n},\"lost_events\":{lost},\"duplicate_events\":{dup},\"state_mismatches\":{mismatches},\"seconds\":{:.3},\"job_error\":{}}}",
        args.kills,
        runner.runs,
        reference.len(),
        t0.elapsed().as_secs_f64(),
        failure
            .as_deref()
            .map_or_else(|| "null".to_owned(), json_string),
    );
    if !all_kills && failure.is_none() {
        eprintln!(
            "crash-entities: the job finished after {kills} of {} kills: lower --rate or raise --commands",
            args.kills
        );
    }
    if ok && temporary {
        let _ = std::fs::remove_dir_all(&root);
    } else if !ok {
        eprintln!(
            "crash-entities: input, output, state and logs kept in {}",
            root.display()
        );
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_seeded_and_in_range() {
        let a: Vec<_> = (0..1000).map(|i| command(7, i, 50)).collect();
        assert_eq!(a, (0..1000).map(|i| command(7, i, 50)).collect::<Vec<_>>());
        assert!(a.iter().all(|&(e, x)| e < 50 && (-100..=100).contains(&x)));
        assert_ne!(a, (0..1000).map(|i| command(8, i, 50)).collect::<Vec<_>>());
    }

    #[test]
    fn compare_counts_lost_doubled_and_mismatched() {
        let acct = |balance, events| Account { balance, events };
        let want = Accounts::from([(1, acct(10, 2)), (2, acct(-5, 1)), (3, acct(7, 3))]);
        let got = Accounts::from([(1, acct(10, 2)), (2, acct(-10, 2)), (4, acct(1, 1))]);
        assert_eq!(compare(&want, &got), (3, 2, 3));
        assert_eq!(compare(&want, &want), (0, 0, 0));
    }
}
