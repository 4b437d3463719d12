//! Materialization: blueprint -> physical plan -> channels -> logics -> spawned islands, and the
//! [`RunHandle`] that owns every task of a run.

use crate::EngineError;
use crate::chain::{ChainIsland, Head, Outcome, Tail};
use crate::channel::{Msg, Receiver, Sender, channel};
use crate::clock::SystemClock;
use crate::metrics::{MetricsEntry, StageMetrics, StageMetricsSnapshot};
use crate::plan::{Endpoint, IslandKind, PhysicalPlan, PlanConfig, plan};
use crate::ports::{ChannelInput, RoutedOutput};
use crate::supervise::{FlowSlot, SinkSlot, SourceSlot, StageCommon, panic_error};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use weir_graph::{
    AsyncIo, BoxMat, Clock, EdgeKind, ErasedInput, ErasedOutput, Module, NodeKind, RouterFactory,
    RunnableGraph, Sink, Source, StageError, StageInfo, SubMaterializer,
};

/// Default rows per batch.
pub const DEFAULT_BATCH_SIZE: usize = 1024;
/// Default channel capacity in rows.
pub const DEFAULT_BUFFER_ROWS: usize = 8 * DEFAULT_BATCH_SIZE;
/// Default channel capacity in bytes.
pub const DEFAULT_BUFFER_BYTES: usize = 64 << 20;

/// Turns blueprints into running graphs; holds the run settings (clock, batch size, buffers).
#[derive(Clone)]
pub struct Materializer {
    clock: Option<Arc<dyn Clock>>,
    batch_size: usize,
    buffer_rows: usize,
    handle: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for Materializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Materializer")
            .field("batch_size", &self.batch_size)
            .field("buffer_rows", &self.buffer_rows)
            .finish()
    }
}

impl Default for Materializer {
    fn default() -> Self {
        Self::new()
    }
}

impl Materializer {
    /// A materializer with the real clock and default batch and buffer sizes.
    pub fn new() -> Self {
        Self {
            clock: None,
            batch_size: DEFAULT_BATCH_SIZE,
            buffer_rows: DEFAULT_BUFFER_ROWS,
            handle: None,
        }
    }
    /// Uses `clock` for every stage (e.g. a [`crate::VirtualClock`] in tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
    /// Sets the default rows per batch.
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }
    /// Sets the default channel capacity in rows.
    pub fn with_buffer_rows(mut self, rows: usize) -> Self {
        self.buffer_rows = rows.max(1);
        self
    }
    /// Runs on this runtime instead of the current one.
    pub fn with_runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.handle = Some(handle);
        self
    }

    /// The physical plan the graph would run with.
    pub fn plan<M: Send + 'static>(
        &self,
        graph: &RunnableGraph<M>,
    ) -> Result<PhysicalPlan, EngineError> {
        Ok(plan(Arc::clone(graph.module()), self.plan_config())?)
    }

    fn plan_config(&self) -> PlanConfig {
        PlanConfig {
            buffer_rows: self.buffer_rows,
        }
    }

    /// Starts the graph; returns its materialized value and the handle owning the run.
    pub fn materialize<M: Send + 'static>(
        &self,
        graph: &RunnableGraph<M>,
    ) -> Result<(M, RunHandle), EngineError> {
        let handle = match &self.handle {
            Some(h) => h.clone(),
            None => tokio::runtime::Handle::try_current().map_err(|_| EngineError::NoRuntime)?,
        };
        let clock: Arc<dyn Clock> = match &self.clock {
            Some(c) => Arc::clone(c),
            None => Arc::new(SystemClock::new()),
        };
        let shared = Arc::new(RunShared {
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            aborts: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            metrics: Mutex::new(Vec::new()),
            clock,
            batch_size: self.batch_size,
            cfg: self.plan_config(),
            handle,
            islands: std::sync::atomic::AtomicUsize::new(0),
        });
        let mat = launch(&shared, Arc::clone(graph.module()), vec![], vec![])?;
        let mat = RunnableGraph::<M>::downcast_mat(mat)?;
        Ok((
            mat,
            RunHandle {
                shared,
                detached: false,
            },
        ))
    }
}

pub(crate) struct RunShared {
    cancel: CancellationToken,
    tracker: TaskTracker,
    aborts: Mutex<Vec<AbortHandle>>,
    failure: Mutex<Option<StageError>>,
    metrics: Mutex<Vec<MetricsEntry>>,
    clock: Arc<dyn Clock>,
    batch_size: usize,
    cfg: PlanConfig,
    handle: tokio::runtime::Handle,
    islands: std::sync::atomic::AtomicUsize,
}

impl RunShared {
    /// The one place the engine spawns tasks: tracked by the run, aborted with it.
    fn spawn(&self, name: String, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let span = tracing::debug_span!("island", name = %name);
        let jh = self.tracker.spawn_on(fut.instrument(span), &self.handle);
        if let Ok(mut a) = self.aborts.lock() {
            a.push(jh.abort_handle());
        }
    }

    fn record_failure(&self, e: &StageError) {
        if let Ok(mut f) = self.failure.lock()
            && f.is_none()
        {
            *f = Some(e.clone());
        }
    }
}

/// Owns a running graph: wait for it, cancel it, read its metrics. Dropping it cancels the run
/// (unless detached); no task of the run outlives it.
pub struct RunHandle {
    shared: Arc<RunShared>,
    detached: bool,
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl RunHandle {
    /// Waits until every task of the run has ended; `Err` if a sink saw a failure or the run was cancelled.
    pub async fn wait(&self) -> Result<(), StageError> {
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
        if let Some(e) = self.shared.failure.lock().ok().and_then(|f| f.clone()) {
            return Err(e);
        }
        if self.shared.cancel.is_cancelled() {
            return Err(StageError::cancelled("run was cancelled"));
        }
        Ok(())
    }

    /// Cancels the run: every island stops at its next await point and runs its stop hooks.
    pub fn cancel(&self) {
        self.shared.cancel.cancel();
    }

    /// Whether every task of the run has ended.
    pub fn is_finished(&self) -> bool {
        self.shared.tracker.is_empty()
    }

    /// Number of tasks of the run still alive.
    pub fn live_tasks(&self) -> usize {
        self.shared.tracker.len()
    }

    /// A snapshot of every stage subtask's metrics.
    pub fn metrics(&self) -> Vec<StageMetricsSnapshot> {
        self.shared
            .metrics
            .lock()
            .map(|v| v.iter().map(MetricsEntry::snapshot).collect())
            .unwrap_or_default()
    }

    /// Lets the run go on after this handle is dropped.
    pub fn detach(mut self) {
        self.detached = true;
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        self.shared.cancel.cancel();
        if let Ok(a) = self.shared.aborts.lock() {
            for h in a.iter() {
                h.abort();
            }
        }
    }
}

/// Running a closed graph.
pub trait RunnableExt<M> {
    /// Starts the graph on the current tokio runtime and returns its materialized value; the run
    /// goes on until it completes.
    fn run(&self) -> Result<M, EngineError>;
    /// Starts the graph and returns its materialized value and a handle owning the run.
    fn start(&self) -> Result<(M, RunHandle), EngineError>;
    /// Starts the graph with the given materializer, detached.
    fn run_on(&self, m: &Materializer) -> Result<M, EngineError>;
}

impl<M: Send + 'static> RunnableExt<M> for RunnableGraph<M> {
    fn run(&self) -> Result<M, EngineError> {
        self.run_on(&Materializer::new())
    }
    fn start(&self) -> Result<(M, RunHandle), EngineError> {
        Materializer::new().materialize(self)
    }
    fn run_on(&self, m: &Materializer) -> Result<M, EngineError> {
        let (mat, h) = m.materialize(self)?;
        h.detach();
        Ok(mat)
    }
}

/// Running a source into a sink.
pub trait SourceRunExt<T> {
    /// Connects `sink` and runs, returning the sink's materialized value.
    fn run_with<M2: Send + 'static>(self, sink: Sink<T, M2>) -> Result<M2, EngineError>;
    /// Like [`SourceRunExt::run_with`] with a given materializer.
    fn run_with_on<M2: Send + 'static>(
        self,
        sink: Sink<T, M2>,
        m: &Materializer,
    ) -> Result<M2, EngineError>;
}

impl<T: Send + 'static, M: Send + 'static> SourceRunExt<T> for Source<T, M> {
    fn run_with<M2: Send + 'static>(self, sink: Sink<T, M2>) -> Result<M2, EngineError> {
        self.to_sink_mat(sink).run()
    }
    fn run_with_on<M2: Send + 'static>(
        self,
        sink: Sink<T, M2>,
        m: &Materializer,
    ) -> Result<M2, EngineError> {
        self.to_sink_mat(sink).run_on(m)
    }
}

struct RunSub(Arc<RunShared>);

impl SubMaterializer for RunSub {
    fn source(&self, module: Arc<Module>) -> Result<Box<dyn ErasedInput>, StageError> {
        let (tx, rx) = channel(self.0.cfg.buffer_rows, crate::run::DEFAULT_BUFFER_BYTES);
        launch(&self.0, module, vec![], vec![tx]).map_err(to_stage_error)?;
        Ok(Box::new(ChannelInput::new(
            vec![rx],
            Arc::from("substream"),
        )))
    }

    fn flow(
        &self,
        module: Arc<Module>,
        input: Arc<dyn RouterFactory>,
    ) -> Result<(Box<dyn ErasedOutput>, Box<dyn ErasedInput>), StageError> {
        let (tx_in, rx_in) = channel(self.0.cfg.buffer_rows, DEFAULT_BUFFER_BYTES);
        let (tx_out, rx_out) = channel(self.0.cfg.buffer_rows, DEFAULT_BUFFER_BYTES);
        launch(&self.0, module, vec![rx_in], vec![tx_out]).map_err(to_stage_error)?;
        let router = input
            .make(EdgeKind::Forward, 1)
            .ok_or_else(|| StageError::internal("substream input router"))?;
        let out = RoutedOutput::new(router, vec![tx_in], self.0.batch_size, Arc::default())
            .finishing_on_drop();
        Ok((
            Box::new(out),
            Box::new(ChannelInput::new(vec![rx_out], Arc::from("substream"))),
        ))
    }
}

fn to_stage_error(e: EngineError) -> StageError {
    match e {
        EngineError::Stage(s) => s,
        other => StageError::internal(other.to_string()),
    }
}

struct Wiring {
    /// Per island, per subtask, per input port: receivers.
    rx: Vec<Vec<Vec<Vec<Receiver>>>>,
    /// Per island, per subtask, per output port: senders by destination subtask.
    tx: Vec<Vec<Vec<Vec<Sender>>>>,
    kinds: Vec<Vec<EdgeKind>>,
}

fn wire(p: &PhysicalPlan, ext_in: Vec<Receiver>, ext_out: Vec<Sender>) -> Wiring {
    let mut rx: Vec<Vec<Vec<Vec<Receiver>>>> = p
        .islands
        .iter()
        .map(|i| {
            (0..i.parallelism)
                .map(|_| (0..i.inputs.len()).map(|_| Vec::new()).collect())
                .collect()
        })
        .collect();
    let mut tx: Vec<Vec<Vec<Vec<Sender>>>> = p
        .islands
        .iter()
        .map(|i| {
            (0..i.parallelism)
                .map(|_| (0..i.outputs.len()).map(|_| Vec::new()).collect())
                .collect()
        })
        .collect();
    let mut kinds: Vec<Vec<EdgeKind>> = p
        .islands
        .iter()
        .map(|i| vec![EdgeKind::Forward; i.outputs.len()])
        .collect();
    let mut ext_in: Vec<Option<Receiver>> = ext_in.into_iter().map(Some).collect();
    let mut ext_out: Vec<Option<Sender>> = ext_out.into_iter().map(Some).collect();
    for e in &p.edges {
        match (e.from, e.to) {
            (
                Endpoint::Island {
                    island: a,
                    port: pa,
                },
                Endpoint::Island {
                    island: b,
                    port: pb,
                },
            ) => {
                let (na, nb) = (p.islands[a].parallelism, p.islands[b].parallelism);
                kinds[a][pa] = e.kind;
                for (i, producer) in tx[a].iter_mut().enumerate().take(na) {
                    for (j, consumer) in rx[b].iter_mut().enumerate().take(nb) {
                        if e.kind == EdgeKind::Forward && i != j && na == nb {
                            continue;
                        }
                        let (s, r) = channel(e.buffer_rows, DEFAULT_BUFFER_BYTES);
                        producer[pa].push(s);
                        consumer[pb].push(r);
                    }
                }
            }
            (
                Endpoint::External(k),
                Endpoint::Island {
                    island: b,
                    port: pb,
                },
            ) => {
                if let Some(r) = ext_in.get_mut(k).and_then(Option::take) {
                    rx[b][0][pb].push(r);
                }
            }
            (
                Endpoint::Island {
                    island: a,
                    port: pa,
                },
                Endpoint::External(k),
            ) => {
                kinds[a][pa] = EdgeKind::Forward;
                if let Some(s) = ext_out.get_mut(k).and_then(Option::take) {
                    tx[a][0][pa].push(s);
                }
            }
            (Endpoint::External(_), Endpoint::External(_)) => {}
        }
    }
    Wiring { rx, tx, kinds }
}

/// Plans, wires, creates every logic, then spawns the islands; returns the erased materialized value.
pub(crate) fn launch(
    shared: &Arc<RunShared>,
    module: Arc<Module>,
    ext_in: Vec<Receiver>,
    ext_out: Vec<Sender>,
) -> Result<BoxMat, EngineError> {
    let p = plan(Arc::clone(&module), shared.cfg)?;
    let island_base = shared
        .islands
        .fetch_add(p.islands.len(), std::sync::atomic::Ordering::Relaxed);
    let mut w = wire(&p, ext_in, ext_out);
    let mut slots: Vec<Option<BoxMat>> = (0..module.nodes.len()).map(|_| None).collect();
    let mut tasks: Vec<(String, futures::future::BoxFuture<'static, ()>)> = Vec::new();
    let mut entries = Vec::new();
    for isl in &p.islands {
        for sub in 0..isl.parallelism {
            let mut stage_metrics = Vec::new();
            let mut common = |node: usize| -> StageCommon {
                let nd = &module.nodes[node];
                let mut info = StageInfo::new(nd.display_name(), node);
                info.subtask = sub;
                info.parallelism = isl.parallelism;
                let m = Arc::new(StageMetrics::default());
                entries.push(MetricsEntry {
                    stage_id: info.id,
                    path: info.path.clone(),
                    subtask: sub,
                    island: island_base + isl.id,
                    m: Arc::clone(&m),
                });
                stage_metrics.push(Arc::clone(&m));
                StageCommon {
                    info,
                    sup: nd.attrs.supervision.clone(),
                    batch: nd.attrs.batch_size.unwrap_or(shared.batch_size),
                    m,
                }
            };
            let rxs = std::mem::take(&mut w.rx[isl.id][sub]);
            let txs = std::mem::take(&mut w.tx[isl.id][sub]);
            let name = format!("island-{}#{}", island_base + isl.id, sub);
            match isl.kind {
                IslandKind::Async => {
                    let node = isl.nodes[0];
                    let NodeKind::Async(factory) = &module.nodes[node].kind else {
                        return Err(StageError::internal("async island without async node").into());
                    };
                    let c = common(node);
                    let (logic, mat) = factory(&c.info).map_err(|e| e.with_stage(&c.info.path))?;
                    if sub == 0 {
                        slots[node] = Some(mat);
                    }
                    let path: Arc<str> = Arc::from(c.info.path.as_str());
                    let inputs: Vec<Option<Box<dyn ErasedInput>>> = rxs
                        .into_iter()
                        .map(|r| {
                            if let Ok(mut v) = c.m.inputs.lock() {
                                v.extend(r.iter().map(|x| Arc::clone(x.shared())));
                            }
                            Some(Box::new(ChannelInput::new(r, Arc::clone(&path)))
                                as Box<dyn ErasedInput>)
                        })
                        .collect();
                    let mut controls = Vec::new();
                    let mut outputs: Vec<Option<Box<dyn ErasedOutput>>> = Vec::new();
                    for (port, senders) in txs.into_iter().enumerate() {
                        controls.extend(senders.iter().map(Sender::control));
                        let kind = w.kinds[isl.id][port];
                        let router = module.nodes[node].outputs[port]
                            .make(kind, senders.len())
                            .ok_or_else(|| router_error(&c.info.path, kind))?;
                        outputs.push(Some(Box::new(RoutedOutput::new(
                            router,
                            senders,
                            c.batch,
                            Arc::clone(&c.m),
                        ))));
                    }
                    let io = AsyncIo {
                        inputs,
                        outputs,
                        info: c.info.clone(),
                        clock: Arc::clone(&shared.clock),
                        supervision: c.sup.clone(),
                        batch_size: c.batch,
                        sub: Arc::new(RunSub(Arc::clone(shared))),
                    };
                    let terminal = isl.outputs.is_empty();
                    let sh = Arc::clone(shared);
                    tasks.push((
                        name,
                        Box::pin(run_async(logic, io, controls, c, terminal, sh)),
                    ));
                }
                IslandKind::Chain => {
                    let mut head = None;
                    let mut flows = Vec::new();
                    let mut tail = None;
                    let mut rxs = rxs.into_iter();
                    let mut txs = txs.into_iter();
                    for &node in &isl.nodes {
                        let c = common(node);
                        match &module.nodes[node].kind {
                            NodeKind::Source(f) => {
                                let (logic, mat) =
                                    f(&c.info).map_err(|e| e.with_stage(&c.info.path))?;
                                if sub == 0 {
                                    slots[node] = Some(mat);
                                }
                                head = Some(Head::Source(SourceSlot {
                                    logic,
                                    factory: Arc::clone(f),
                                    c,
                                }));
                            }
                            NodeKind::Flow(f) => {
                                let (logic, mat) =
                                    f(&c.info).map_err(|e| e.with_stage(&c.info.path))?;
                                if sub == 0 {
                                    slots[node] = Some(mat);
                                }
                                if head.is_none() {
                                    let r = rxs.next().unwrap_or_default();
                                    if let Ok(mut v) = c.m.inputs.lock() {
                                        v.extend(r.iter().map(|x| Arc::clone(x.shared())));
                                    }
                                    head = Some(Head::Input(ChannelInput::new(
                                        r,
                                        Arc::from(c.info.path.as_str()),
                                    )));
                                }
                                flows.push(FlowSlot {
                                    logic,
                                    factory: Arc::clone(f),
                                    c,
                                });
                            }
                            NodeKind::Sink(f) => {
                                let (logic, mat) =
                                    f(&c.info).map_err(|e| e.with_stage(&c.info.path))?;
                                if sub == 0 {
                                    slots[node] = Some(mat);
                                }
                                if head.is_none() {
                                    let r = rxs.next().unwrap_or_default();
                                    if let Ok(mut v) = c.m.inputs.lock() {
                                        v.extend(r.iter().map(|x| Arc::clone(x.shared())));
                                    }
                                    head = Some(Head::Input(ChannelInput::new(
                                        r,
                                        Arc::from(c.info.path.as_str()),
                                    )));
                                }
                                tail = Some(Tail::Sink(SinkSlot { logic, c }));
                            }
                            NodeKind::Async(_) => {
                                return Err(StageError::internal("async node in a chain").into());
                            }
                        }
                    }
                    let last = *isl.nodes.last().unwrap_or(&0);
                    let tail = match tail {
                        Some(t) => t,
                        None => {
                            let senders = txs.next().unwrap_or_default();
                            let kind = w.kinds[isl.id][0];
                            let path = module.node_path(last);
                            let router = module.nodes[last].outputs[0]
                                .make(kind, senders.len())
                                .ok_or_else(|| router_error(&path, kind))?;
                            let m = stage_metrics.last().cloned().unwrap_or_default();
                            let batch = module.nodes[last]
                                .attrs
                                .batch_size
                                .unwrap_or(shared.batch_size);
                            Tail::Output(RoutedOutput::new(router, senders, batch, m))
                        }
                    };
                    let Some(head) = head else {
                        return Err(StageError::internal("chain without head").into());
                    };
                    let terminal = matches!(tail, Tail::Sink(_));
                    let island = ChainIsland {
                        head,
                        flows,
                        tail,
                        clock: Arc::clone(&shared.clock),
                        cancel: shared.cancel.clone(),
                        metrics: stage_metrics,
                        mark: std::time::Instant::now(),
                    };
                    let sh = Arc::clone(shared);
                    tasks.push((
                        name,
                        Box::pin(async move {
                            let out = AssertUnwindSafe(island.run()).catch_unwind().await;
                            let out = out.unwrap_or_else(|p| Outcome::Failed(panic_error(p)));
                            if let Outcome::Failed(e) = &out {
                                tracing::debug!(error = %e, "island failed");
                                if terminal {
                                    sh.record_failure(e);
                                }
                            }
                        }),
                    ));
                }
            }
        }
    }
    let mat = module.mat.eval(&mut slots)?;
    if let Ok(mut m) = shared.metrics.lock() {
        m.extend(entries);
    }
    for (name, t) in tasks {
        shared.spawn(name, t);
    }
    Ok(mat)
}

fn router_error(path: &str, kind: EdgeKind) -> EngineError {
    EngineError::Graph(weir_graph::GraphError::InvalidStage {
        node: path.to_owned(),
        reason: format!("its element type cannot be routed with a {kind:?} edge"),
    })
}

async fn run_async(
    logic: Box<dyn weir_graph::AsyncLogic>,
    io: AsyncIo,
    controls: Vec<Sender>,
    c: StageCommon,
    terminal: bool,
    shared: Arc<RunShared>,
) {
    let fut = AssertUnwindSafe(logic.run(io)).catch_unwind();
    let r = tokio::select! {
        biased;
        _ = shared.cancel.cancelled() => None,
        r = fut => Some(r),
    };
    match r {
        None => {}
        Some(Ok(Ok(()))) => {
            for s in &controls {
                let _ = s.push(Msg::End);
            }
        }
        Some(res) => {
            let e = match res {
                Ok(Err(e)) => e,
                Err(p) => panic_error(p),
                Ok(Ok(())) => StageError::internal("unreachable"),
            }
            .with_stage(&c.info.path);
            StageMetrics::add(&c.m.failures, 1);
            for s in &controls {
                let _ = s.push(Msg::Error(e.clone()));
            }
            if terminal {
                shared.record_failure(&e);
            }
        }
    }
    c.stopped();
}
