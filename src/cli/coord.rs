//! `weir coordinator`, `weir node --join` and the network side of `weir run|status|cancel|
//! savepoint --cluster ADDR`: the control plane over QUIC with mutual TLS.

use super::exit::Exit;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use weir_cluster::coord::{
    AgentConfig, Client, ClientError, Coordinator, CoordinatorConfig, CoordinatorStatus, JobEnd,
    JobSpec,
};
use weir_cluster::tls::NodeIdentity;
use weir_cluster::transport::{QuicConfig, QuicTransport, Transport};

/// How a client reaches the coordinator: its certificate and the coordinator's name.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct ClientTls {
    /// With `--cluster ADDR`: the folder with the cluster CA and this client's certificate
    /// (made by `weir cert`).
    #[arg(long, value_name = "DIR", env = "WEIR_CLUSTER_CERTS")]
    certs: Option<PathBuf>,
    /// With `--cluster ADDR`: the name of this client's certificate in `--certs`.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "client",
        env = "WEIR_CERT_NAME"
    )]
    cert_name: String,
    /// With `--cluster ADDR`: the coordinator's certificate name.
    #[arg(long, value_name = "NAME", default_value = "coordinator")]
    coordinator_name: String,
}

/// Flags of `weir coordinator`.
#[derive(Debug, clap::Args)]
pub(super) struct CoordinatorArgs {
    /// The UDP address to serve QUIC on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    listen: String,
    /// The folder with the cluster CA and the coordinator's certificate.
    #[arg(long, value_name = "DIR")]
    certs: PathBuf,
    /// The coordinator's certificate name.
    #[arg(long, value_name = "NAME", default_value = "coordinator")]
    name: String,
    /// Where job directories go (`DIR/jobs/NAME`: fence, commit log, checkpoint copies); every
    /// node must reach it at the same path.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// How long a job waits for enough free nodes before it fails (`30s`, `2m`).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = super::settings::parse_duration)]
    wait_nodes: Duration,
    /// Serve the web UI's cluster page and `/api/v1/cluster` on this port (0: any free one).
    #[arg(long, value_name = "PORT")]
    ui_port: Option<u16>,
    /// The address the UI listens on.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1",
        requires = "ui_port"
    )]
    ui_bind: std::net::IpAddr,
}

/// The coordinator as the web UI's cluster page shows it.
struct View(Arc<Coordinator>);

impl weir_ops::ClusterView for View {
    fn view(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = serde_json::Value> + Send>> {
        let status = self.0.full_status();
        Box::pin(async move {
            serde_json::to_value(status.await).unwrap_or_else(
                |e| serde_json::json!({ "error": format!("cannot encode the status: {e}") }),
            )
        })
    }
}

/// Flags of `weir node`.
#[derive(Debug, clap::Args)]
pub(super) struct NodeArgs {
    /// The coordinator's address (`HOST:PORT`).
    #[arg(long, value_name = "ADDR")]
    join: String,
    /// This node's certificate name (its name in the cluster).
    #[arg(long, value_name = "NAME")]
    name: String,
    /// The folder with the cluster CA and this node's certificate and key.
    #[arg(long, value_name = "DIR")]
    certs: PathBuf,
    /// Where this node's job programs serve their QUIC edges (`HOST:PORT`, reachable by the
    /// other nodes).
    #[arg(long, value_name = "ADDR")]
    data: String,
    /// The coordinator's certificate name.
    #[arg(long, value_name = "NAME", default_value = "coordinator")]
    coordinator_name: String,
    /// Where the programs' logs go (`DIR/logs`).
    #[arg(long, value_name = "DIR", default_value = ".")]
    work_dir: PathBuf,
}

/// How often `weir node` looks the coordinator's name up again.
const FOLLOW_EVERY: Duration = Duration::from_secs(5);

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `HOST:PORT` as a socket address (the first the name resolves to).
fn resolve(what: &str, addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("{what} {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{what} {addr}: no address"))
}

/// Whether `--cluster` names a coordinator (`HOST:PORT` that is not a folder here).
pub(super) fn is_address(cluster: &str) -> bool {
    !std::path::Path::new(cluster).exists()
        && cluster
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("weir: cannot start a runtime: {e}");
            Exit::Failed
        })
}

/// A QUIC endpoint on `bind` with certificate `name` from `certs`.
fn endpoint(
    certs: &std::path::Path,
    name: &str,
    bind: SocketAddr,
) -> Result<Arc<QuicTransport>, String> {
    let identity =
        NodeIdentity::load(certs, name).map_err(|e| format!("certificate {name}: {e}"))?;
    QuicTransport::bind(QuicConfig::new(identity, bind)).map_err(|e| format!("{bind}: {e}"))
}

/// The unspecified address of `peer`'s family, any port (an endpoint that connects out).
fn any_for(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends a pod).
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// `weir coordinator`: serves until SIGINT or SIGTERM.
pub(super) fn coordinator(a: &CoordinatorArgs) -> Exit {
    let _ = super::logging::init(super::settings::LogFormat::Text);
    let listen = match resolve("--listen", &a.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("weir coordinator: {e}");
            return Exit::Usage;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e,
    };
    rt.block_on(async {
        let quic = match endpoint(&a.certs, &a.name, listen) {
            Ok(q) => q,
            Err(e) => {
                eprintln!("weir coordinator: {e}");
                return Exit::Usage;
            }
        };
        let at = quic
            .local_addr()
            .map_or_else(|_| listen.to_string(), |a| a.to_string());
        let mut cfg = CoordinatorConfig::new(&a.name, &a.dir);
        cfg.wait_nodes = a.wait_nodes;
        let c = Arc::new(Coordinator::serve(quic as Arc<dyn Transport>, cfg));
        let ui = match a.ui_port {
            Some(port) => {
                let cfg = weir_ops::OpsConfig {
                    bind: a.ui_bind,
                    port,
                    job_files: false,
                    cluster: Some(Arc::new(View(Arc::clone(&c)))),
                    ..weir_ops::OpsConfig::default()
                };
                match weir_ops::start(cfg) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        eprintln!("weir coordinator: the UI: {e}");
                        return Exit::Usage;
                    }
                }
            }
            None => None,
        };
        let ui_text = ui
            .as_ref()
            .map_or_else(String::new, |s| format!(", UI {}/#/cluster", s.url()));
        // The one line scripts wait for (the port is known once this is printed).
        println!(
            "weir coordinator {} listening on {at}, jobs in {}{ui_text}",
            a.name,
            a.dir.display()
        );
        shutdown().await;
        eprintln!("weir coordinator: stopping");
        Exit::Ok
    })
}

/// `weir node --join ADDR`: runs the node agent until SIGINT, SIGTERM or the coordinator
/// refuses it; its running program is killed on the way out.
pub(super) fn node(a: &NodeArgs) -> Exit {
    let _ = super::logging::init(super::settings::LogFormat::Text);
    let (join, data) = match (resolve("--join", &a.join), resolve("--data", &a.data)) {
        (Ok(j), Ok(d)) => (j, d),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("weir node: {e}");
            return Exit::Usage;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e,
    };
    rt.block_on(async {
        let quic = match endpoint(&a.certs, &a.name, any_for(join)) {
            Ok(q) => q,
            Err(e) => {
                eprintln!("weir node: {e}");
                return Exit::Usage;
            }
        };
        quic.add_peer(&a.coordinator_name, join);
        // A coordinator known by a DNS name (a Kubernetes service) is followed to a new
        // address when it restarts elsewhere.
        let _follow = (a.join.parse::<SocketAddr>().is_err()).then(|| {
            let (q, name) = (Arc::clone(&quic), a.coordinator_name.clone());
            AbortOnDrop(tokio::spawn(weir_cluster::membership::follow(
                a.join.clone(),
                FOLLOW_EVERY,
                join,
                move |addr| q.add_peer(&name, addr),
            )))
        });
        let certs = std::path::absolute(&a.certs).unwrap_or_else(|_| a.certs.clone());
        let work = std::path::absolute(&a.work_dir).unwrap_or_else(|_| a.work_dir.clone());
        let cfg = AgentConfig {
            name: a.name.clone(),
            coordinator: a.coordinator_name.clone(),
            data,
            certs,
            work,
            max_backoff: Duration::from_secs(5),
        };
        eprintln!(
            "weir node {}: joining {join}, serving job edges on {data}",
            a.name
        );
        tokio::select! {
            r = weir_cluster::coord::run_agent(quic as Arc<dyn Transport>, cfg) => match r {
                Ok(()) => Exit::Ok,
                Err(e) => {
                    eprintln!("weir node: {e}");
                    Exit::Failed
                }
            },
            () = shutdown() => {
                eprintln!("weir node {}: stopping", a.name);
                Exit::Ok
            }
        }
    })
}

/// A client of the coordinator at `addr`.
fn client(addr: &str, tls: &ClientTls) -> Result<Client, (Exit, String)> {
    let at = resolve("--cluster", addr).map_err(|e| (Exit::Usage, e))?;
    let certs = tls.certs.as_ref().ok_or_else(|| {
        (
            Exit::Usage,
            "--cluster ADDR needs --certs DIR (or WEIR_CLUSTER_CERTS) with a client certificate of the cluster CA".to_owned(),
        )
    })?;
    let quic = endpoint(certs, &tls.cert_name, any_for(at)).map_err(|e| (Exit::Usage, e))?;
    quic.add_peer(&tls.coordinator_name, at);
    Ok(Client::new(
        quic as Arc<dyn Transport>,
        &tls.coordinator_name,
    ))
}

/// Runs `f` with a client of `addr`, printing a failure as `weir WHAT: ...`.
fn with_client<F, Fut>(what: &str, addr: &str, tls: &ClientTls, f: F) -> Exit
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<Exit, ClientError>>,
{
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e,
    };
    rt.block_on(async {
        let c = match client(addr, tls) {
            Ok(c) => c,
            Err((exit, e)) => {
                eprintln!("weir {what}: {e}");
                return exit;
            }
        };
        match f(c).await {
            Ok(exit) => exit,
            Err(e @ ClientError::Unreachable { .. }) => {
                eprintln!("weir {what}: {e}");
                Exit::NotFound
            }
            Err(e) => {
                eprintln!("weir {what}: {e}");
                Exit::Failed
            }
        }
    })
}

fn end_exit(end: &JobEnd) -> Exit {
    match end {
        JobEnd::Finished { .. } => Exit::Ok,
        JobEnd::Cancelled { .. } => Exit::Cancelled,
        JobEnd::Failed { .. } => Exit::Failed,
    }
}

fn end_text(job: &str, end: &JobEnd) -> String {
    match end {
        JobEnd::Finished { epoch, restarts } => {
            format!("job {job}: finished in attempt {epoch} ({restarts} restarts)")
        }
        JobEnd::Cancelled { epoch } => format!("job {job}: cancelled in attempt {epoch}"),
        JobEnd::Failed {
            epoch,
            restarts,
            reason,
        } => format!("job {job}: failed in attempt {epoch} ({restarts} restarts): {reason}"),
    }
}

/// A job name from the program's file stem: letters, digits, `-` and `_` kept.
fn job_name(program: &str) -> String {
    let stem = std::path::Path::new(program)
        .file_stem()
        .map_or_else(|| "job".into(), |s| s.to_string_lossy().into_owned());
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() { "job".into() } else { name }
}

/// What `weir run --cluster ADDR` runs.
pub(super) struct Submit {
    /// The program every node starts, and its arguments.
    pub program: Vec<String>,
    /// Nodes.
    pub nodes: usize,
    /// The job's name (default: the program's file stem).
    pub name: Option<String>,
    /// Attempts after the first before the job fails.
    pub max_restarts: u32,
    /// Return once the job was accepted.
    pub detach: bool,
}

/// `weir run --cluster ADDR`: submits the job and follows it to its end.
pub(super) fn run(addr: &str, tls: &ClientTls, s: Submit) -> Exit {
    let name = s.name.clone().unwrap_or_else(|| job_name(&s.program[0]));
    let spec = JobSpec {
        name: name.clone(),
        nodes: s.nodes,
        program: s.program,
        max_restarts: s.max_restarts,
    };
    with_client("run", addr, tls, |c| async move {
        if s.detach {
            let job = c.submit(spec).await?;
            println!("job {job} submitted to {addr}");
            return Ok(Exit::Ok);
        }
        let end = c.run(spec, |p| eprintln!("weir run: {p}")).await?;
        let text = end_text(&name, &end);
        match end {
            JobEnd::Finished { .. } => println!("{text}"),
            _ => eprintln!("weir run: {text}"),
        }
        Ok(end_exit(&end))
    })
}

fn print_status(addr: &str, s: &CoordinatorStatus) {
    println!(
        "coordinator {} at {addr}: {} nodes, {} jobs",
        s.coordinator,
        s.nodes.len(),
        s.jobs.len()
    );
    println!("{:<20} {:<24} RUNS", "NODE", "DATA");
    for n in &s.nodes {
        let runs = n
            .running
            .as_ref()
            .map_or_else(|| "-".to_owned(), |(j, i)| format!("{j} #{i}"));
        println!("{:<20} {:<24} {runs}", n.name, n.data.to_string());
    }
    println!(
        "{:<20} {:<10} {:>7} {:>8} {:>8}  NODES",
        "JOB", "STATE", "ATTEMPT", "RESTARTS", "CHECKPT"
    );
    for j in &s.jobs {
        println!(
            "{:<20} {:<10} {:>7} {:>8} {:>8}  {}",
            j.name,
            j.state,
            j.epoch,
            j.restarts,
            j.latest_complete
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            j.nodes.join(",")
        );
    }
}

/// `weir status --cluster ADDR`.
pub(super) fn status(addr: &str, tls: &ClientTls, json: bool) -> Exit {
    with_client("status", addr, tls, |c| async move {
        let s = c.status().await?;
        if json {
            match serde_json::to_string_pretty(&s) {
                Ok(t) => println!("{t}"),
                Err(e) => {
                    eprintln!("weir status: {e}");
                    return Ok(Exit::Failed);
                }
            }
        } else {
            print_status(addr, &s);
        }
        Ok(Exit::Ok)
    })
}

/// `weir cancel --cluster ADDR [JOB]`: waits until every node of the job stopped.
pub(super) fn cancel(addr: &str, tls: &ClientTls, job: Option<String>, json: bool) -> Exit {
    with_client("cancel", addr, tls, |c| async move {
        let (job, end) = c.cancel(job).await?;
        if json {
            match serde_json::to_string(&serde_json::json!({"job": job, "end": end})) {
                Ok(t) => println!("{t}"),
                Err(e) => {
                    eprintln!("weir cancel: {e}");
                    return Ok(Exit::Failed);
                }
            }
        } else {
            println!("{}", end_text(&job, &end));
        }
        Ok(Exit::Ok)
    })
}

/// `weir savepoint --cluster ADDR TARGET [--job JOB]`: the target is a folder the coordinator
/// reaches.
pub(super) fn savepoint(
    addr: &str,
    tls: &ClientTls,
    job: Option<String>,
    target: &std::path::Path,
    json: bool,
) -> Exit {
    let target = std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    with_client("savepoint", addr, tls, |c| async move {
        let s = c.savepoint(job, target).await?;
        if json {
            match serde_json::to_string(&s) {
                Ok(t) => println!("{t}"),
                Err(e) => {
                    eprintln!("weir savepoint: {e}");
                    return Ok(Exit::Failed);
                }
            }
        } else {
            println!(
                "savepoint (checkpoint {} of {} nodes, {} bytes) written to {}",
                s.checkpoint, s.nodes, s.bytes, s.path
            );
        }
        Ok(Exit::Ok)
    })
}
