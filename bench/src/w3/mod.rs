//! The W3 job and its crash harness: `w3-gen` writes W3 events, `w3-job` runs them through
//! 1 s tumbling event-time sums per key into transactional part files with checkpoints,
//! `crash` SIGKILLs that job at random moments and verifies the committed output, `w3`
//! measures throughput. Each subcommand has flags of its own (part of the product: keep them
//! stable).

pub mod cluster;
pub mod corrupt;
pub mod crash;
pub mod crash_cluster;
pub mod events;
pub mod job;
pub mod node;
pub mod throughput;
pub mod verify;

use std::path::PathBuf;

/// The W3 subcommands of `weir-bench`.
#[derive(clap::Subcommand)]
pub enum W3Command {
    /// Writes W3 events (`key,value,ts_ms`: key 0..999, value 1..100, 10 per event-time ms, up
    /// to 99 ms late), deterministic for a seed.
    #[command(name = "w3-gen")]
    Gen {
        /// How many events; accepts `2e7`.
        #[arg(long, value_parser = crate::parse_count)]
        events: u64,
        /// The file to write.
        #[arg(long)]
        output: PathBuf,
        /// Seeds the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Runs W3 as a job: events file -> 1 s tumbling sums per key -> part files, checkpointed;
    /// started again on the same state directory it resumes.
    #[command(name = "w3-job")]
    Job {
        /// The events file (`key,value,ts_ms` lines).
        #[arg(long)]
        input: PathBuf,
        /// The directory of the committed part files (`key,window_start_ms,sum` lines).
        #[arg(long)]
        output: PathBuf,
        /// The directory of the checkpoints.
        #[arg(long)]
        state_dir: PathBuf,
        /// Time between checkpoints; 0 turns them off.
        #[arg(long)]
        checkpoint_interval_ms: u64,
        /// Throttles the source to this many events per second; accepts `1e5`.
        #[arg(long, value_parser = crate::parse_count)]
        rate: Option<u64>,
        /// Runs the job on a local cluster of this many node processes (QUIC with mutual TLS
        /// between them), restarting every node from the job's newest complete checkpoint
        /// when one dies; output in `OUTPUT/node-I`.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
        nodes: Option<u16>,
        /// With `--nodes`: attempts after the first before the job gives up.
        #[arg(long, default_value_t = 1000, requires = "nodes")]
        max_restarts: u32,
        /// With `--nodes`: a node that died restarts with an empty local state directory, as
        /// on a new machine, and restores from the copies on the job's store.
        #[arg(long, requires = "nodes")]
        fresh_disk: bool,
        /// With `--nodes`: starts from this cluster savepoint (`weir savepoint --cluster`) when
        /// the job has no checkpoint of its own yet; one of another node count is rescaled
        /// (it needs `--splits`, as the job that took it).
        #[arg(long, requires = "nodes")]
        from_savepoint: Option<PathBuf>,
        /// With `--nodes`: splits the input into this many files of consecutive lines (into
        /// `INPUT.splits-S/`), of which node `i` reads those at positions `j % N == i`; the
        /// same splits serve every node count, so a savepoint rescales onto another one.
        /// Without it each node reads every N-th line.
        #[arg(long, requires = "nodes", value_parser = clap::value_parser!(u16).range(1..=4096))]
        splits: Option<u16>,
    },
    /// One node of `w3-job --nodes N` (started by it): its part of the input through the
    /// exchange by key into its windows and part files.
    #[command(name = "w3-node")]
    Node {
        /// This node's part of the events (or, with `--shared-input`, the job's folder of
        /// splits).
        #[arg(long)]
        input: PathBuf,
        /// `--input` is the job's folder of splits, of which the node reads its share (the
        /// files at positions `j % nodes == node`).
        #[arg(long)]
        shared_input: bool,
        /// This node's part files.
        #[arg(long)]
        output: PathBuf,
        /// This node's checkpoints.
        #[arg(long)]
        state_dir: PathBuf,
        /// The directory the nodes share (certificates, commit log, attempt record); with
        /// `--node`, `--nodes` and `--epoch`, or all four from the environment a supervisor or
        /// node agent sets (`WEIR_CLUSTER_DIR`, `WEIR_NODE`, `WEIR_NODES`, `WEIR_EPOCH`).
        #[arg(long, requires_all = ["node", "nodes", "epoch"])]
        cluster_dir: Option<PathBuf>,
        /// This node's index.
        #[arg(long, requires = "cluster_dir")]
        node: Option<usize>,
        /// How many nodes run the job.
        #[arg(long, requires = "cluster_dir")]
        nodes: Option<usize>,
        /// The attempt.
        #[arg(long, requires = "cluster_dir")]
        epoch: Option<u64>,
        /// Time between checkpoints; 0 turns them off.
        #[arg(long)]
        checkpoint_interval_ms: u64,
        /// Throttles this node's source to this many events per second.
        #[arg(long, value_parser = crate::parse_count)]
        rate: Option<u64>,
        /// Starts from this cluster savepoint when the job has no checkpoint yet.
        #[arg(long)]
        from_savepoint: Option<PathBuf>,
    },
    /// Runs W3 as a job on a local cluster of node processes, SIGKILLs a random node at
    /// random moments, verifies the committed output against the reference; one JSON line,
    /// exit code 0 only when exact.
    #[command(name = "crash-cluster")]
    CrashCluster {
        /// Node processes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
        nodes: u16,
        /// Random SIGKILLs of a node.
        #[arg(long)]
        kills: u32,
        /// Events of the input (default: enough for the kills to land mid-run); accepts `1e6`.
        #[arg(long, value_parser = crate::parse_count)]
        events: Option<u64>,
        /// Seeds the input and the kill moments.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Events per second the job reads over all nodes.
        #[arg(long, default_value_t = 10_000, value_parser = crate::parse_count)]
        rate: u64,
        /// The job's checkpoint interval.
        #[arg(long, default_value_t = 100)]
        checkpoint_interval_ms: u64,
        /// The shortest time an attempt lives before its kill.
        #[arg(long, default_value_t = 300)]
        min_delay_ms: u64,
        /// The longest time an attempt lives before its kill.
        #[arg(long, default_value_t = 1000)]
        max_delay_ms: u64,
        /// Where input, output, state and logs go (cleared first; default: a temporary
        /// directory, removed when the run passes).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// A killed node restarts with an empty local state directory (`w3-job --fresh-disk`).
        #[arg(long)]
        fresh_disk: bool,
    },
    /// Kills `w3-job` at random moments, restarts it, verifies the committed output against a
    /// reference computed without failures; one JSON line, exit code 0 only when exact.
    Crash {
        /// Random SIGKILLs.
        #[arg(long)]
        kills: u32,
        /// SIGKILLs right after a restart, before the run completes a checkpoint (S3), after
        /// the random ones.
        #[arg(long, default_value_t = 0)]
        recovery_kills: u32,
        /// Events of the input (default: rate x (kills x the mean delay + 1 s)); accepts `1e6`.
        #[arg(long, value_parser = crate::parse_count)]
        events: Option<u64>,
        /// Seeds the input and the kill moments.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Events per second the job reads.
        #[arg(long, default_value_t = 10_000, value_parser = crate::parse_count)]
        rate: u64,
        /// The job's checkpoint interval.
        #[arg(long, default_value_t = 100)]
        checkpoint_interval_ms: u64,
        /// The shortest life of a run before its kill.
        #[arg(long, default_value_t = 100)]
        min_delay_ms: u64,
        /// The longest life of a run before its kill.
        #[arg(long, default_value_t = 500)]
        max_delay_ms: u64,
        /// Where input, output, state and logs go (cleared first; default: a temporary
        /// directory, removed when the run passes).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Damages the newest complete checkpoint after the kills, before the last run (S5).
        #[arg(long, value_enum)]
        corrupt: Option<corrupt::Corruption>,
    },
    /// W3 throughput: generator and CSV variants, checkpoints off and every 1 s, and
    /// hand-written loops; JSON lines.
    W3 {
        /// Events per variant; accepts `1e7`.
        #[arg(long, default_value_t = 10_000_000, value_parser = crate::parse_count)]
        n: u64,
        /// Seeds the events.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Runs only these variants (comma-separated; default all); the loops always run.
        #[arg(long, value_delimiter = ',')]
        variants: Vec<String>,
    },
}

/// Runs a W3 subcommand; its exit code.
pub fn run(cmd: W3Command) -> i32 {
    match cmd {
        W3Command::Gen {
            events,
            output,
            seed,
        } => match events::write_file(&output, seed, events) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("w3-gen: cannot write {}: {e}", output.display());
                1
            }
        },
        W3Command::Job {
            input,
            output,
            state_dir,
            checkpoint_interval_ms,
            rate,
            nodes,
            max_restarts,
            fresh_disk,
            from_savepoint,
            splits,
        } => {
            if rate == Some(0) {
                eprintln!("w3-job: --rate must be at least 1");
                return 2;
            }
            if let Some(nodes) = nodes {
                return cluster::main(&cluster::ClusterArgs {
                    input,
                    output,
                    state_dir,
                    checkpoint_interval_ms,
                    rate,
                    nodes: usize::from(nodes),
                    max_restarts,
                    fresh_disk,
                    from_savepoint,
                    splits: splits.map(usize::from),
                });
            }
            job::main(&job::JobArgs {
                input,
                output,
                state_dir,
                checkpoint_interval_ms,
                rate,
            })
        }
        W3Command::Crash {
            kills,
            recovery_kills,
            events,
            seed,
            rate,
            checkpoint_interval_ms,
            min_delay_ms,
            max_delay_ms,
            workdir,
            corrupt,
        } => {
            if rate == 0 || min_delay_ms > max_delay_ms {
                eprintln!(
                    "crash: --rate must be at least 1 and --min-delay-ms at most --max-delay-ms"
                );
                return 2;
            }
            crash::main(&crash::CrashArgs {
                kills,
                recovery_kills,
                events,
                seed,
                rate,
                checkpoint_interval_ms,
                min_delay_ms,
                max_delay_ms,
                workdir,
                corrupt,
            })
        }
        W3Command::Node {
            input,
            shared_input,
            output,
            state_dir,
            cluster_dir,
            node,
            nodes,
            epoch,
            checkpoint_interval_ms,
            rate,
            from_savepoint,
        } => {
            let settings = match (cluster_dir, node, nodes, epoch) {
                (Some(dir), Some(node), Some(nodes), Some(epoch)) => {
                    weir_cluster::job::NodeSettings::local(node, nodes, dir, epoch)
                }
                _ => match weir_cluster::job::NodeSettings::from_env() {
                    Ok(Some(s)) => s,
                    Ok(None) => {
                        eprintln!(
                            "w3-node: give --cluster-dir, --node, --nodes and --epoch, or run under a supervisor or node agent"
                        );
                        return 2;
                    }
                    Err(e) => {
                        eprintln!("w3-node: {e}");
                        return 2;
                    }
                },
            };
            if settings.node >= settings.nodes || rate == Some(0) {
                eprintln!("w3-node: --node must be below --nodes and --rate at least 1");
                return 2;
            }
            node::main(&node::NodeArgs {
                input,
                shared_input,
                output,
                state_dir,
                settings,
                checkpoint_interval_ms,
                rate,
                from_savepoint,
            })
        }
        W3Command::CrashCluster {
            nodes,
            kills,
            events,
            seed,
            rate,
            checkpoint_interval_ms,
            min_delay_ms,
            max_delay_ms,
            workdir,
            fresh_disk,
        } => {
            if rate == 0 || min_delay_ms > max_delay_ms {
                eprintln!(
                    "crash-cluster: --rate must be at least 1 and --min-delay-ms at most --max-delay-ms"
                );
                return 2;
            }
            crash_cluster::main(&crash_cluster::Args {
                nodes: usize::from(nodes),
                kills,
                events,
                seed,
                rate,
                checkpoint_interval_ms,
                min_delay_ms,
                max_delay_ms,
                workdir,
                fresh_disk,
            })
        }
        W3Command::W3 { n, seed, variants } => throughput::main(n, seed, &variants),
    }
}
