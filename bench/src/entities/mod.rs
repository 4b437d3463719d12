//! The sharded event-sourced account job and its crash harness: `entities-job` routes
//! `entity_id,amount` commands to event-sourced account entities whose `Deposited(amount)`
//! events go to a RocksDB journal, then writes `entity_id,balance,events` for every entity;
//! `crash-entities` SIGKILLs it at random moments and checks that no event was lost or doubled.
//! Their flags and JSON lines are part of the product: keep them stable.

pub mod crash;
pub mod job;

use std::path::PathBuf;

/// The entity subcommands of `weir-bench`.
#[derive(clap::Subcommand)]
pub enum EntitiesCommand {
    /// Runs the account entities over a command file; started again after a SIGKILL on the same
    /// state directory it resumes and never applies a command twice.
    #[command(name = "entities-job")]
    Job {
        /// Lines `entity_id,amount` (ids 0..9999, amounts -100..100).
        #[arg(long)]
        input: PathBuf,
        /// Where `entity_id,balance,events` lines go (written atomically at the end).
        #[arg(long)]
        output: PathBuf,
        /// The journal and the checkpoints.
        #[arg(long)]
        state_dir: PathBuf,
        /// Throttles the commands to this many per second; accepts `1e5`.
        #[arg(long, value_parser = crate::parse_count)]
        rate: Option<u64>,
        /// Time between checkpoints of the source position; 0 turns them off (a restart then
        /// replays every command, the journal skipping those applied).
        #[arg(long, default_value_t = 200)]
        checkpoint_interval_ms: u64,
        /// Subtasks the entities are sharded over (by persistence id).
        #[arg(long, default_value_t = 2)]
        parallelism: usize,
    },
    /// Kills `entities-job` at random moments, restarts it, and compares every entity's state
    /// and events with a reference computed without failures; one JSON line, exit code 0 only
    /// when exact.
    #[command(name = "crash-entities")]
    Crash {
        /// Random SIGKILLs.
        #[arg(long)]
        kills: u32,
        /// Commands of the input (default: enough for the kills to land mid-run); accepts `1e5`.
        #[arg(long, value_parser = crate::parse_count)]
        commands: Option<u64>,
        /// Distinct entity ids (at most 10000).
        #[arg(long, default_value_t = 10_000)]
        entities: u32,
        /// Seeds the input and the kill moments.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Commands per second the job reads.
        #[arg(long, default_value_t = 20_000, value_parser = crate::parse_count)]
        rate: u64,
        /// The job's checkpoint interval.
        #[arg(long, default_value_t = 200)]
        checkpoint_interval_ms: u64,
        /// The shortest life of a run before its kill.
        #[arg(long, default_value_t = 100)]
        min_delay_ms: u64,
        /// The longest life of a run before its kill.
        #[arg(long, default_value_t = 600)]
        max_delay_ms: u64,
        /// Where input, output, state and logs go (cleared first; default: a temporary
        /// directory, removed when the run passes).
        #[arg(long)]
        workdir: Option<PathBuf>,
    },
}

/// Runs an entity subcommand; its exit code.
pub fn run(cmd: EntitiesCommand) -> i32 {
    match cmd {
        EntitiesCommand::Job {
            input,
            output,
            state_dir,
            rate,
            checkpoint_interval_ms,
            parallelism,
        } => {
            if rate == Some(0) || parallelism == 0 {
                eprintln!("entities-job: --rate and --parallelism must be at least 1");
                return 2;
            }
            job::main(&job::JobArgs {
                input,
                output,
                state_dir,
                rate,
                checkpoint_interval_ms,
                parallelism,
            })
        }
        EntitiesCommand::Crash {
            kills,
            commands,
            entities,
            seed,
            rate,
            checkpoint_interval_ms,
            min_delay_ms,
            max_delay_ms,
            workdir,
        } => {
            if rate == 0 || min_delay_ms > max_delay_ms || entities == 0 || entities > 10_000 {
                eprintln!(
                    "crash-entities: --rate must be at least 1, --min-delay-ms at most --max-delay-ms, --entities in 1..=10000"
                );
                return 2;
            }
            crash::main(&crash::CrashArgs {
                kills,
                commands,
                entities,
                seed,
                rate,
                checkpoint_interval_ms,
                min_delay_ms,
                max_delay_ms,
                workdir,
            })
        }
    }
}
