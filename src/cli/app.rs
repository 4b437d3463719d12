//! The `weir` command line: its clap tree and what each subcommand does.

use super::child;
use super::client::{self, ClientError, Target};
use super::examples::{Example, ExampleOptions};
#[cfg(test)]
use super::exit::EXIT_CODES_HELP;
use super::exit::Exit;
use super::job::{Job, JobArgs};
use super::settings::parse_duration;
use crate::viz::Format;
use clap::{CommandFactory, Parser};
use serde_json::Value;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

const MAIN_HELP: &str = "Examples:
  weir run pipeline.py --state-dir /tmp/st --checkpoint-interval 10s
  weir run --example ticker --ui-port 8081
  weir jobs
  weir status ticker
  weir savepoint ticker /tmp/sp
  weir cancel ticker
  weir visualize pipeline.py --format svg --physical > plan.svg
  weir completions bash > /etc/bash_completion.d/weir

Exit codes:
  0    success (the job finished)
  1    the job failed, or the request failed
  2    usage error (unknown command or flag, bad value)
  3    job not found, or its process not reachable
  4    refused: missing or wrong token
  130  the job was cancelled (Ctrl-C, SIGTERM, weir cancel)";

/// The `weir` command line.
#[derive(Debug, Parser)]
#[command(
    name = "weir",
    version,
    about = "weir: a stream-centric dataflow engine",
    long_about = "weir: a stream-centric dataflow engine. Runs jobs (Python scripts and built-in \
                  examples) with a web UI, HTTP API and Prometheus metrics, and operates running \
                  jobs. `weir` alone runs the demo.",
    after_help = MAIN_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the embedded demo job (word count over a generated corpus) and print its metrics.
    #[command(after_help = "Examples:\n  weir demo\n  weir demo --lines 1000000 --parallelism 4")]
    Demo(DemoArgs),
    /// Run a Python pipeline in its own interpreter, or a built-in example, with the UI on.
    #[command(after_help = "Examples:
  weir run pipeline.py --input data.csv
  weir run --state-dir /tmp/st --checkpoint-interval 500ms pipeline.py
  weir run --example ticker --ui-port 8081 --token secret
  weir run --example demo --linger 60

A script gets the job flags as WEIR_UI_PORT, WEIR_METRICS_PORT, WEIR_BIND, WEIR_TOKEN,
WEIR_STATE_DIR, WEIR_CHECKPOINT_INTERVAL, WEIR_FROM_SAVEPOINT, WEIR_PARALLELISM, WEIR_LOG_FORMAT
and WEIR_JOB_NAME (its file stem); the interpreter is $WEIR_PYTHON, else the active virtual
environment's python, else python3. Arguments after the script go to the script. Ctrl-C cancels
the job (exit 130).")]
    Run(RunArgs),
    /// List the running jobs of this user's processes.
    #[command(
        after_help = "Examples:\n  weir jobs\n  weir jobs --json\n  weir jobs --url http://127.0.0.1:8081"
    )]
    Jobs(JobsArgs),
    /// Show a job: its state, uptime and every stage subtask's counters.
    #[command(
        after_help = "Examples:\n  weir status ticker\n  weir status 1 --json\n  weir status --cluster /tmp/c --json"
    )]
    Status(JobRef),
    /// Cancel a job (needs its token; found in the job file of your own processes).
    #[command(
        after_help = "Examples:\n  weir cancel ticker\n  weir cancel 1 --url http://127.0.0.1:8081 --token secret\n  weir cancel --cluster /tmp/c"
    )]
    Cancel(JobRef),
    /// Take a savepoint of a job into a directory (the job must run with --state-dir).
    #[command(
        after_help = "Examples:\n  weir savepoint ticker /tmp/sp\n  weir run --example ticker --state-dir /tmp/st2 --from-savepoint /tmp/sp\n  weir savepoint --cluster /tmp/c /tmp/sp"
    )]
    Savepoint(SavepointArgs),
    /// Print a job's logical graph or physical plan without running it.
    #[command(after_help = "Examples:
  weir visualize pipeline.py --format mermaid
  weir visualize pipeline.py --format svg --physical > plan.svg
  weir visualize --example demo --format dot --physical --parallelism 4")]
    Visualize(VisualizeArgs),
    /// Make a cluster CA and one certificate per node (mutual TLS between nodes).
    #[command(after_help = "Examples:
  weir cert --dir /etc/weir/certs node-a node-b node-c

Writes ca.pem, ca.key and <node>.pem / <node>.key (private keys mode 0600); each node
certificate is valid for its name, localhost, 127.0.0.1 and ::1. Keep ca.key offline.")]
    Cert(CertArgs),
    /// Run a job program as a local cluster of node processes (restart-all on a node loss).
    #[command(
        name = "local-cluster",
        after_help = "Examples:
  weir local-cluster --nodes 3 -- ./target/release/my-job --input data.csv
  weir local-cluster --nodes 2 --dir /tmp/c -- weir-bench w3-node ...

Each node process gets WEIR_NODE, WEIR_NODES, WEIR_CLUSTER_DIR and WEIR_EPOCH; a Rust job joins
the others with weir_cluster::job::JobNode::start(&NodeSettings::from_env()?) and exchanges
elements by key with weir_cluster::exchange::exchange. When a node dies the others are stopped
and every node starts again (a new epoch), restoring the newest checkpoint all of them
completed. Each node's output goes to DIR/logs/eEPOCH-node-I.{stdout,stderr}; the last
attempt's stdout of every node is printed at the end, in node order."
    )]
    LocalCluster(super::cluster::LocalClusterArgs),
    /// Run a coordinator: node agents join it, jobs are submitted to it (`weir run --cluster`).
    #[command(after_help = "Examples:
  weir cert --dir certs coordinator node-a node-b client
  weir coordinator --listen 0.0.0.0:7070 --certs certs --dir /shared/weir

Every node and client needs a certificate of the same cluster CA (mutual TLS over QUIC). A job's
directory (DIR/jobs/NAME: fence, commit log, checkpoint copies) must be reachable at the same
path by every node. SIGINT or SIGTERM stops it; the nodes then stop their programs.")]
    Coordinator(super::coord::CoordinatorArgs),
    /// Run a node agent: join a coordinator and run the job programs it assigns.
    #[command(after_help = "Examples:
  weir node --join 127.0.0.1:7070 --name node-a --certs certs --data 127.0.0.1:7101
  weir run --cluster 127.0.0.1:7070 --certs certs --parallelism 2 -- ./my-job --out out-{node}

Each program gets WEIR_NODE, WEIR_NODES, WEIR_CLUSTER_DIR, WEIR_EPOCH, WEIR_PEERS and WEIR_CERTS;
a Rust job joins the others with weir_cluster::job::JobNode::start(&NodeSettings::from_env()?),
serving its edges on --data. Logs go to WORK_DIR/logs/JOB-eEPOCH.{stdout,stderr}. Losing the
coordinator stops the program; the agent joins again.")]
    Node(super::coord::NodeArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  weir completions bash > ~/.local/share/bash-completion/completions/weir\n  weir completions zsh > ~/.zfunc/_weir\n  weir completions fish > ~/.config/fish/completions/weir.fish"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Flags of `weir cert`.
#[derive(Debug, clap::Args)]
struct CertArgs {
    /// Folder the CA and node certificates go into (created if missing).
    #[arg(long)]
    dir: std::path::PathBuf,
    /// Node names, one certificate each.
    #[arg(required = true)]
    nodes: Vec<String>,
}

/// Writes the cluster CA and node certificates of `weir cert`.
fn cert(a: &CertArgs) -> Exit {
    let nodes: Vec<&str> = a.nodes.iter().map(String::as_str).collect();
    match weir_cluster::tls::write_cluster_certs(&a.dir, &nodes) {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            Exit::Ok
        }
        Err(e) => {
            eprintln!("weir cert: {e}");
            Exit::Usage
        }
    }
}

/// Flags of `weir demo`.
#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Lines of generated text.
    #[arg(long, default_value_t = 100_000)]
    lines: usize,
    /// Subtasks of the split and count stages.
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
}

/// Flags of `weir run`.
#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    job: JobArgs,
    /// Run this built-in example instead of a script.
    #[arg(long, value_enum, conflicts_with = "script")]
    example: Option<Example>,
    /// Keep the UI up this long after the job ended (`30`, `30s`, `2m`); Ctrl-C ends it early.
    #[arg(long, value_name = "SECS", value_parser = parse_linger)]
    linger: Option<Duration>,
    /// Lines of the demo example's corpus.
    #[arg(long, default_value_t = 100_000)]
    lines: usize,
    /// Ticks per second of the ticker example.
    #[arg(long, default_value_t = 200)]
    rate: usize,
    /// Run the job over the nodes of the coordinator at this address (`HOST:PORT`): the
    /// script argument is then the job program every node starts (a `.py` script runs with the
    /// node's $WEIR_PYTHON or python3; `{node}` and `{name}` in its arguments become the node's
    /// index and name), on `--parallelism` nodes (default 1).
    #[arg(long, value_name = "ADDR", conflicts_with = "example")]
    cluster: Option<String>,
    /// With `--cluster`: the job's name (default: the program's file stem).
    #[arg(long, value_name = "NAME", requires = "cluster")]
    job_name: Option<String>,
    /// With `--cluster`: attempts after the first before the job fails.
    #[arg(long, value_name = "N", default_value_t = 1000, requires = "cluster")]
    max_restarts: u32,
    /// With `--cluster`: return once the coordinator accepted the job.
    #[arg(long, requires = "cluster")]
    detach: bool,
    #[command(flatten)]
    tls: super::coord::ClientTls,
    /// The Python script to run.
    #[arg(required_unless_present = "example")]
    script: Option<PathBuf>,
    /// Arguments passed to the script.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// How to reach jobs.
#[derive(Debug, Clone, clap::Args)]
struct Reach {
    /// Talk to the process at this URL instead of discovering them.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// The token of mutating calls (default: the one in the job file).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Print the API's JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Flags of `weir jobs`.
#[derive(Debug, clap::Args)]
struct JobsArgs {
    #[command(flatten)]
    reach: Reach,
}

/// A job and how to reach it.
#[derive(Debug, clap::Args)]
struct JobRef {
    /// The job: its name or its run number (with `--cluster ADDR`: the job's name, default
    /// the one running).
    #[arg(required_unless_present = "cluster")]
    job: Option<String>,
    /// A job running as a local cluster (`weir local-cluster --dir DIR`, `weir-bench w3-job
    /// --nodes N`): its cluster directory; or a coordinator's address (`HOST:PORT`).
    #[arg(long, value_name = "DIR|ADDR", conflicts_with_all = ["url", "token"])]
    cluster: Option<String>,
    #[command(flatten)]
    reach: Reach,
    #[command(flatten)]
    tls: super::coord::ClientTls,
}

/// Flags of `weir savepoint`.
#[derive(Debug, clap::Args)]
struct SavepointArgs {
    /// The job: its name or its run number (with `--cluster`: the savepoint directory).
    job: String,
    /// The directory the savepoint is written to.
    #[arg(required_unless_present = "cluster")]
    dir: Option<PathBuf>,
    /// A job running as a local cluster: its cluster directory, or a coordinator's address
    /// (`HOST:PORT`); the one argument is then the directory the savepoint is written to (one
    /// the coordinator reaches).
    #[arg(long, value_name = "DIR|ADDR", conflicts_with_all = ["dir", "url", "token"])]
    cluster: Option<String>,
    /// With `--cluster ADDR`: the job (default: the one running).
    #[arg(long, value_name = "NAME", requires = "cluster")]
    job_name: Option<String>,
    #[command(flatten)]
    reach: Reach,
    #[command(flatten)]
    tls: super::coord::ClientTls,
}

/// Output formats of `weir visualize`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum VizFormat {
    /// A Mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
    /// A standalone SVG image.
    Svg,
}

/// Flags of `weir visualize`.
#[derive(Debug, clap::Args)]
struct VisualizeArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = VizFormat::Mermaid)]
    format: VizFormat,
    /// The physical plan (fused islands, channel edges, parallelism) instead of the logical graph.
    #[arg(long)]
    physical: bool,
    /// Default parallelism the plan is made with.
    #[arg(long, value_name = "N")]
    parallelism: Option<usize>,
    /// Visualize this built-in example instead of a script.
    #[arg(long, value_enum, conflicts_with = "script")]
    example: Option<Example>,
    /// The Python script whose graph is printed (it stops before running it).
    #[arg(required_unless_present = "example")]
    script: Option<PathBuf>,
    /// Arguments passed to the script.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

fn parse_linger(s: &str) -> Result<Duration, String> {
    match s.parse::<u64>() {
        Ok(n) => Ok(Duration::from_secs(n)),
        Err(_) => parse_duration(s),
    }
}

/// Runs the `weir` command line; the process's exit code.
pub fn main() -> Exit {
    let cli = Cli::parse();
    match cli.command {
        None => demo(&DemoArgs {
            lines: 100_000,
            parallelism: 2,
        }),
        Some(Command::Demo(a)) => demo(&a),
        Some(Command::Run(a)) => run(a),
        Some(Command::Jobs(a)) => report(jobs(&a.reach)),
        Some(Command::Status(a)) => match &a.cluster {
            Some(c) if super::coord::is_address(c) => super::coord::status(c, &a.tls, a.reach.json),
            Some(_) if a.job.is_some() => cluster_dir_and_job("status"),
            Some(dir) => super::cluster::status(std::path::Path::new(dir), a.reach.json),
            None => report(status(&a)),
        },
        Some(Command::Cancel(a)) => match &a.cluster {
            Some(c) if super::coord::is_address(c) => {
                super::coord::cancel(c, &a.tls, a.job.clone(), a.reach.json)
            }
            Some(_) if a.job.is_some() => cluster_dir_and_job("cancel"),
            Some(dir) => super::cluster::cancel(std::path::Path::new(dir), a.reach.json),
            None => report(cancel(&a)),
        },
        Some(Command::Savepoint(a)) => match &a.cluster {
            Some(c) if super::coord::is_address(c) => super::coord::savepoint(
                c,
                &a.tls,
                a.job_name.clone(),
                std::path::Path::new(&a.job),
                a.reach.json,
            ),
            Some(dir) => super::cluster::savepoint(
                std::path::Path::new(dir),
                std::path::Path::new(&a.job),
                a.reach.json,
            ),
            None => report(savepoint(&a)),
        },
        Some(Command::Coordinator(a)) => super::coord::coordinator(&a),
        Some(Command::Node(a)) => super::coord::node(&a),
        Some(Command::Visualize(a)) => visualize(a),
        Some(Command::Cert(a)) => cert(&a),
        Some(Command::LocalCluster(a)) => super::cluster::local_cluster(&a),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "weir", &mut std::io::stdout());
            Exit::Ok
        }
    }
}

fn demo(a: &DemoArgs) -> Exit {
    if let Err(e) = super::logging::init(super::settings::LogFormat::Text) {
        eprintln!("weir demo: {e}");
        return Exit::Usage;
    }
    let rt = match weir_engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return Exit::Failed;
        }
    };
    let started = std::time::Instant::now();
    match rt.block_on(crate::demo::word_count(a.lines, a.parallelism)) {
        Ok(report) => {
            super::examples::print_report(&report, started.elapsed().as_secs_f64(), a.parallelism);
            Exit::Ok
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            Exit::Failed
        }
    }
}

/// A local cluster's directory holds one job: a job name with it is a usage error.
fn cluster_dir_and_job(what: &str) -> Exit {
    eprintln!(
        "weir {what}: a cluster directory holds one job: give no job name with --cluster DIR"
    );
    Exit::Usage
}

fn run(a: RunArgs) -> Exit {
    if let Some(addr) = &a.cluster {
        let Some(script) = &a.script else {
            return Exit::Usage;
        };
        let mut program = vec![script.to_string_lossy().into_owned()];
        program.extend(a.args.iter().map(|s| s.to_string_lossy().into_owned()));
        return super::coord::run(
            addr,
            &a.tls,
            super::coord::Submit {
                program,
                nodes: a.job.parallelism.unwrap_or(1),
                name: a.job_name.clone(),
                max_restarts: a.max_restarts,
                detach: a.detach,
            },
        );
    }
    let name = match (&a.example, &a.script) {
        (Some(e), _) => e.name().to_owned(),
        (None, Some(s)) => child::script_name(s),
        (None, None) => return Exit::Usage,
    };
    let settings = match a.job.settings(&name) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("weir run: {e}");
            return Exit::Usage;
        }
    };
    if let Some(ex) = a.example {
        let opts = ExampleOptions {
            lines: a.lines,
            rate: a.rate,
            parallelism: a.job.parallelism.unwrap_or(2),
            run_parallelism: a.job.parallelism,
        };
        let checkpoints = settings.checkpoint_config();
        let mut job = Job::new(name, settings);
        if let Some(d) = a.linger {
            job = job.linger(d);
        }
        return ex.run(job, checkpoints, opts);
    }
    let Some(script) = a.script else {
        return Exit::Usage;
    };
    match child::run_script(&script, &a.args, &settings.to_env()) {
        Ok(code) => exit_of(code),
        Err(e) => child::start_failed(&e),
    }
}

/// The [`Exit`] of a child's exit code, passed through.
fn exit_of(code: u8) -> Exit {
    match code {
        0 => Exit::Ok,
        c => Exit::Child(c),
    }
}

fn visualize(a: VisualizeArgs) -> Exit {
    let format = match a.format {
        VizFormat::Mermaid => Format::Mermaid,
        VizFormat::Dot => Format::Dot,
        VizFormat::Svg => Format::Svg,
    };
    if let Some(ex) = a.example {
        let opts = ExampleOptions {
            lines: 1_000,
            rate: 200,
            parallelism: a.parallelism.unwrap_or(2),
            run_parallelism: a.parallelism,
        };
        let text = match ex.render(&opts, format, a.physical) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("weir visualize: {e}");
                return Exit::Failed;
            }
        };
        print!("{text}");
        return Exit::Ok;
    }
    let Some(script) = a.script else {
        return Exit::Usage;
    };
    let mut env = vec![
        (super::settings::env::VISUALIZE, format.name().to_owned()),
        (
            super::settings::env::VISUALIZE_PHYSICAL,
            if a.physical { "1" } else { "0" }.to_owned(),
        ),
        (super::settings::env::JOB_NAME, child::script_name(&script)),
    ];
    if let Some(p) = a.parallelism {
        env.push((super::settings::env::PARALLELISM, p.to_string()));
    }
    match child::run_script(&script, &a.args, &env) {
        Ok(0) => Exit::Ok,
        Ok(code) => {
            eprintln!(
                "weir visualize: {} exited with {code} before printing its graph",
                script.display()
            );
            exit_of(code)
        }
        Err(e) => child::start_failed(&e),
    }
}

/// Prints the error of a client command and maps it to its exit code.
fn report(r: Result<(), ClientError>) -> Exit {
    match r {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("weir: {e}");
            e.exit()
        }
    }
}

/// The processes to talk to: `--url`, else every discovered one.
fn targets(r: &Reach) -> Vec<Target> {
    if let Some(u) = &r.url {
        return vec![Target {
            url: u.trim_end_matches('/').to_owned(),
            token: r.token.clone(),
            pid: None,
        }];
    }
    super::discover::targets()
        .into_iter()
        .map(|mut t| {
            if r.token.is_some() {
                t.token.clone_from(&r.token);
            }
            t
        })
        .collect()
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

fn num_of(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "-".to_owned(),
    }
}

fn uptime(v: &Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    match v.get("started_at_ms").and_then(Value::as_u64) {
        Some(t) => format!("{:.1}s", now.saturating_sub(t) as f64 / 1e3),
        None => "-".to_owned(),
    }
}

fn jobs(r: &Reach) -> Result<(), ClientError> {
    let ts = targets(r);
    let all = client::jobs(&ts, r.url.is_none())?;
    if r.json {
        print_json(&Value::Array(all));
        return Ok(());
    }
    if all.is_empty() {
        println!("no running jobs");
        return Ok(());
    }
    println!(
        "{:<8} {:<4} {:<20} {:<10} {:<9} URL",
        "PID", "ID", "NAME", "STATE", "UPTIME"
    );
    for j in &all {
        println!(
            "{:<8} {:<4} {:<20} {:<10} {:<9} {}",
            num_of(j, "pid"),
            num_of(j, "id"),
            str_of(j, "name"),
            str_of(j, "state"),
            uptime(j),
            str_of(j, "url")
        );
    }
    Ok(())
}

fn status(a: &JobRef) -> Result<(), ClientError> {
    let job = a.job.as_deref().unwrap_or_default();
    let (t, d) = client::find(&targets(&a.reach), job)?;
    if a.reach.json {
        print_json(&d);
        return Ok(());
    }
    println!(
        "job {} {:?} (pid {}) {}, up {} at {}",
        num_of(&d, "id"),
        str_of(&d, "name"),
        num_of(&d, "pid"),
        str_of(&d, "state"),
        uptime(&d),
        t.url
    );
    if let Some(e) = d.get("error").and_then(Value::as_str) {
        println!("error: {e}");
    }
    if let Some(c) = d.get("checkpoints").filter(|c| c.is_object()) {
        println!(
            "checkpoints: {} completed, {} failed, latest {}, last took {} ms",
            num_of(c, "completed"),
            num_of(c, "failed"),
            num_of(c, "latest_completed"),
            fixed(c, "last_duration_ms", 1.0, "")
        );
    }
    let stages = d
        .get("stages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    println!(
        "{:<24} {:>7} {:>12} {:>12} {:>9} {:>9} {:>6} {:>6}",
        "STAGE", "SUBTASK", "IN", "OUT", "IN/S", "OUT/S", "BUSY", "BACKP"
    );
    for s in &stages {
        println!(
            "{:<24} {:>7} {:>12} {:>12} {:>9} {:>9} {:>6} {:>6}",
            str_of(s, "path"),
            num_of(s, "subtask"),
            num_of(s, "elements_in"),
            num_of(s, "elements_out"),
            fixed(s, "in_rate", 1.0, ""),
            fixed(s, "out_rate", 1.0, ""),
            fixed(s, "busy", 100.0, "%"),
            fixed(s, "backpressured", 100.0, "%")
        );
    }
    Ok(())
}

/// `v[k] * scale` with one decimal and `unit`, `-` when absent.
fn fixed(v: &Value, k: &str, scale: f64, unit: &str) -> String {
    v.get(k)
        .and_then(Value::as_f64)
        .map_or_else(|| "-".to_owned(), |r| format!("{:.1}{unit}", r * scale))
}

fn cancel(a: &JobRef) -> Result<(), ClientError> {
    let job = a.job.as_deref().unwrap_or_default();
    let (t, d) = client::find(&targets(&a.reach), job)?;
    let v = client::cancel(&t, job, &d)?;
    if a.reach.json {
        print_json(&v);
    } else {
        println!(
            "job {} {:?}: {}",
            num_of(&d, "id"),
            str_of(&d, "name"),
            str_of(&v, "state")
        );
    }
    Ok(())
}

fn savepoint(a: &SavepointArgs) -> Result<(), ClientError> {
    let (t, d) = client::find(&targets(&a.reach), &a.job)?;
    let given = a.dir.clone().unwrap_or_default();
    let dir = std::path::absolute(&given).unwrap_or(given);
    let v = client::savepoint(&t, &a.job, &d, &dir.display().to_string())?;
    if a.reach.json {
        print_json(&v);
    } else {
        println!(
            "savepoint of job {} {:?} written to {}",
            num_of(&d, "id"),
            str_of(&d, "name"),
            str_of(&v, "path")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn linger_takes_seconds_or_a_duration() {
        assert_eq!(parse_linger("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_linger("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_linger("soon").is_err());
    }

    #[test]
    fn the_exit_table_in_the_help_is_the_documented_one() {
        assert!(MAIN_HELP.ends_with(EXIT_CODES_HELP));
    }
}
