//! Launching a module inside a run: wiring channels between island subtasks, creating every
//! stage logic, spawning the islands, and starting sub-graphs for substream operators.

use crate::EngineError;
use crate::async_island::{AsyncPorts, AsyncStage};
use crate::chain::{ChainIsland, Head, Outcome, Tail};
use crate::channel::{Receiver, Sender, channel, channel_on_demand};
use crate::metrics::{MetricsEntry, StageMetrics};
use crate::plan::{Endpoint, IslandKind, PhysicalPlan, plan};
use crate::ports::{ChannelInput, RoutedOutput};
use crate::shared::RunShared;
use crate::supervise::{FlowSlot, SinkSlot, SourceSlot, StageCommon, panic_error};
use crate::watch::{IslandProbe, Watched};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use weir_graph::{
    BoxMat, EdgeKind, ErasedInput, ErasedOutput, Module, NodeKind, RouterFactory, StageError,
    StageInfo, SubMaterializer,
};

struct RunSub(Arc<RunShared>);

impl SubMaterializer for RunSub {
    fn run_failure(&self) -> Option<StageError> {
        self.0.failure.lock().ok().and_then(|f| f.clone())
    }
    fn source(&self, module: Arc<Module>) -> Result<Box<dyn ErasedInput>, StageError> {
        let (tx, rx) = channel(self.0.cfg.buffer_rows_at(None), self.0.cfg.buffer_bytes);
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
        self.sub_flow(module, input, true)
    }

    fn flow_detached(
        &self,
        module: Arc<Module>,
        input: Arc<dyn RouterFactory>,
    ) -> Result<(Box<dyn ErasedOutput>, Box<dyn ErasedInput>), StageError> {
        self.sub_flow(module, input, false)
    }
}

impl RunSub {
    /// Starts a flow sub-graph; `record` says whether a failing sink in it fails the run.
    fn sub_flow(
        &self,
        module: Arc<Module>,
        input: Arc<dyn RouterFactory>,
        record: bool,
    ) -> Result<(Box<dyn ErasedOutput>, Box<dyn ErasedInput>), StageError> {
        let (tx_in, rx_in) = channel(self.0.cfg.buffer_rows_at(None), self.0.cfg.buffer_bytes);
        let (tx_out, rx_out) = channel(self.0.cfg.buffer_rows_at(None), self.0.cfg.buffer_bytes);
        launch_with(&self.0, module, vec![rx_in], vec![tx_out], record).map_err(to_stage_error)?;
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
                        let (s, r) = if e.on_demand {
                            channel_on_demand(e.buffer_rows)
                        } else {
                            channel(e.buffer_rows, e.buffer_bytes)
                        };
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
    launch_with(shared, module, ext_in, ext_out, true)
}

/// [`launch`]; with `record` false a failing sink ends its island without failing the run.
fn launch_with(
    shared: &Arc<RunShared>,
    module: Arc<Module>,
    ext_in: Vec<Receiver>,
    ext_out: Vec<Sender>,
    record: bool,
) -> Result<BoxMat, EngineError> {
    // Injected controls reach the sources of the run's graph, not those of sub-graphs.
    let top = ext_in.is_empty() && ext_out.is_empty();
    // The run's default parallelism is the top-level graph's: a sub-graph started inside the
    // run (substream, lazy or restarted stage: it has outside ports) keeps its element order.
    let cfg = if top {
        shared.cfg
    } else {
        crate::plan::PlanConfig {
            parallelism: 1,
            ..shared.cfg
        }
    };
    let p = plan(Arc::clone(&module), cfg)?;
    let island_base = shared
        .islands
        .fetch_add(p.islands.len(), std::sync::atomic::Ordering::Relaxed);
    let mut w = wire(&p, ext_in, ext_out);
    let ids = module.stage_ids();
    // Checkpoints cover the stages of the run's graph, not those of sub-graphs.
    let ck = shared.checkpoints.as_deref().filter(|_| top);
    let mut slots: Vec<Option<BoxMat>> = (0..module.nodes.len()).map(|_| None).collect();
    shared.check_executors(&p)?;
    let mut tasks: Vec<(
        Arc<IslandProbe>,
        bool,
        futures::future::BoxFuture<'static, ()>,
        weir_graph::ExecutorId,
    )> = Vec::new();
    let mut entries = Vec::new();
    for isl in &p.islands {
        for sub in 0..isl.parallelism {
            let mut stage_metrics = Vec::new();
            let services = shared.services();
            let mut common = |node: usize| -> StageCommon {
                let nd = &module.nodes[node];
                let mut info = StageInfo::new(nd.display_name(), node);
                info.id = ids[node];
                info.subtask = sub;
                info.parallelism = isl.parallelism;
                info.services = services.clone();
                let m = Arc::new(StageMetrics::default());
                entries.push(MetricsEntry {
                    stage_id: info.id,
                    path: info.path.clone(),
                    subtask: sub,
                    island: island_base + isl.id,
                    sink: nd.outputs.is_empty(),
                    m: Arc::clone(&m),
                });
                stage_metrics.push(Arc::clone(&m));
                let policy = nd.attrs.supervision.clone();
                StageCommon {
                    sup: crate::errlog::observed(
                        policy.as_ref(),
                        &shared.errors,
                        &m,
                        &info.path,
                        sub,
                    ),
                    policy,
                    info,
                    batch: nd.attrs.batch_size.unwrap_or(shared.batch_size),
                    m,
                    log: Arc::clone(&shared.errors),
                }
            };
            let rxs = std::mem::take(&mut w.rx[isl.id][sub]);
            let txs = std::mem::take(&mut w.tx[isl.id][sub]);
            let name = format!("island-{}#{}", island_base + isl.id, sub);
            let stages = isl.nodes.iter().map(|&n| module.node_path(n)).collect();
            let probe = Arc::new(IslandProbe::new(name, stages));
            match isl.kind {
                IslandKind::Async => {
                    let node = isl.nodes[0];
                    let NodeKind::Async(factory) = &module.nodes[node].kind else {
                        return Err(StageError::internal("async island without async node").into());
                    };
                    let c = common(node);
                    let (mut logic, mat) =
                        factory(&c.info).map_err(|e| e.with_stage(&c.info.path))?;
                    if sub == 0 {
                        slots[node] = Some(mat);
                    }
                    let ack = match (ck, &shared.checkpoints) {
                        (Some(ck), Some(coord)) => {
                            ck.expect(c.info.id, sub);
                            crate::async_restore::restore_async(ck, &c.info, sub, logic.as_mut())
                                .map_err(|e| restore_error(ck, &c, e))?;
                            Some(Arc::new(crate::checkpoint::AsyncCheckpoint {
                                ck: Arc::clone(coord),
                                stage: c.info.id,
                                sub,
                                finished: Default::default(),
                            }))
                        }
                        _ => None,
                    };
                    let mut controls = Vec::new();
                    let mut routed = Vec::new();
                    for (port, senders) in txs.into_iter().enumerate() {
                        controls.extend(senders.iter().map(Sender::control));
                        watch_outputs(&c.m, &senders);
                        let kind = w.kinds[isl.id][port];
                        let router = module.nodes[node].outputs[port]
                            .make(kind, senders.len())
                            .ok_or_else(|| router_error(&c.info.path, kind))?;
                        routed.push(
                            RoutedOutput::new(router, senders, c.batch, Arc::clone(&c.m))
                                .counting_elements(),
                        );
                    }
                    let ports = AsyncPorts::new(
                        logic.handles_control(),
                        rxs,
                        routed,
                        ack,
                        &c.info.path,
                        |r| channel_input(r, &c).counting_into(Arc::clone(&c.m)),
                    );
                    if let Some(h) = &ports.hub
                        && top
                        && isl.inputs.is_empty()
                    {
                        shared.injectors.add_async(h);
                    }
                    let terminal = record && isl.outputs.is_empty();
                    let stop = stop_token(shared, isl.outputs.is_empty() && !isl.inputs.is_empty());
                    let stage = AsyncStage {
                        logic,
                        factory: Arc::clone(factory),
                        ports,
                        controls,
                        c,
                        terminal,
                        stop,
                        shared: Arc::clone(shared),
                        sub: Arc::new(RunSub(Arc::clone(shared))),
                    };
                    tasks.push((probe, terminal, Box::pin(stage.run()), isl.executor));
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
                                let (mut logic, mat) =
                                    f(&c.info).map_err(|e| e.with_stage(&c.info.path))?;
                                if let Some(ck) = ck {
                                    ck.expect(c.info.id, sub);
                                    crate::checkpoint::restore_source(ck, &c.info, logic.as_mut())
                                        .map_err(|e| restore_error(ck, &c, e))?;
                                }
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
                                let (mut logic, mat) =
                                    f(&c.info).map_err(|e| e.with_stage(&c.info.path))?;
                                if let Some(ck) = ck {
                                    ck.expect(c.info.id, sub);
                                    crate::checkpoint::restore_flow(ck, &c.info, logic.as_mut())
                                        .map_err(|e| restore_error(ck, &c, e))?;
                                }
                                if sub == 0 {
                                    slots[node] = Some(mat);
                                }
                                if head.is_none() {
                                    let r = rxs.next().unwrap_or_default();
                                    head = Some(Head::Input(channel_input(r, &c)));
                                }
                                flows.push(FlowSlot {
                                    logic,
                                    factory: Arc::clone(f),
                                    c,
                                });
                            }
                            NodeKind::Sink(f) => {
                                let (mut logic, mat) =
                                    f(&c.info).map_err(|e| e.with_stage(&c.info.path))?;
                                if let Some(ck) = ck {
                                    ck.expect(c.info.id, sub);
                                    crate::checkpoint::restore_sink(ck, &c.info, logic.as_mut())
                                        .map_err(|e| restore_error(ck, &c, e))?;
                                }
                                if sub == 0 {
                                    slots[node] = Some(mat);
                                }
                                if head.is_none() {
                                    let r = rxs.next().unwrap_or_default();
                                    head = Some(Head::Input(channel_input(r, &c)));
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
                            watch_outputs(&m, &senders);
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
                    let terminal = record && matches!(tail, Tail::Sink(_));
                    let base = usize::from(matches!(head, Head::Source(_)));
                    let drains = matches!(tail, Tail::Sink(_)) && matches!(head, Head::Input(_));
                    let inject = (top && matches!(head, Head::Source(_))).then(|| {
                        let slot = Arc::new(crate::control::InjectSlot::default());
                        shared.injectors.add_chain(&slot);
                        slot
                    });
                    let island = ChainIsland {
                        head,
                        flows,
                        tail,
                        clock: Arc::clone(&shared.clock),
                        cancel: stop_token(shared, drains),
                        run: Arc::clone(shared),
                        metrics: stage_metrics,
                        mark: std::time::Instant::now(),
                        probe: Arc::clone(&probe),
                        base,
                        yields: isl.executor != weir_graph::ExecutorId::TOKIO,
                        woke: false,
                        inject,
                        checkpoint: ck.is_some().then(|| shared.checkpoints.clone()).flatten(),
                    };
                    let sh = Arc::clone(shared);
                    tasks.push((
                        probe,
                        terminal,
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
                        isl.executor,
                    ));
                }
            }
        }
    }
    let mat = module.mat.eval(&mut slots)?;
    if let Ok(mut m) = shared.metrics.lock() {
        m.extend(entries);
    }
    if let Ok(mut v) = shared.probes.lock() {
        // Substreams launch islands all along a run: forget the ended ones now and then, so
        // the list stays proportional to the islands alive.
        let at = shared
            .probes_prune_at
            .load(std::sync::atomic::Ordering::Relaxed);
        if v.len() >= at {
            v.retain(|p| !p.is_done());
            let next = (2 * v.len()).max(crate::shared::PROBES_PRUNE_MIN);
            shared
                .probes_prune_at
                .store(next, std::sync::atomic::Ordering::Relaxed);
        }
        v.extend(tasks.iter().map(|(p, _, _, _)| Arc::clone(p)));
    }
    for (probe, terminal, t, executor) in tasks {
        let name = probe.name.clone();
        if terminal {
            shared.sink_started();
            let sh = Arc::clone(shared);
            shared.spawn(
                executor,
                name,
                Watched::new(t, probe).on_end(Box::new(move || sh.sink_ended())),
            );
        } else {
            shared.spawn(executor, name, Watched::new(t, probe));
        }
    }
    Ok(mat)
}

/// A stage that refused its restored state: the error names the checkpoint and the stage.
fn restore_error(
    ck: &crate::checkpoint::Coordinator,
    c: &StageCommon,
    e: StageError,
) -> EngineError {
    crate::checkpoint::CheckpointError::Restore {
        id: ck.restored_id().unwrap_or(0),
        stage: c.info.id,
        subtask: c.info.subtask,
        reason: format!("{}: {e}", c.info.path),
    }
    .into()
}

/// Lets the metrics of the stage sending into `senders` see whether they are full.
fn watch_outputs(m: &StageMetrics, senders: &[Sender]) {
    if let Ok(mut v) = m.outputs.lock() {
        v.extend(senders.iter().map(|s| Arc::clone(s.shared())));
    }
}

/// The input port of stage `c` over its channels, whose queues its metrics watch.
fn channel_input(r: Vec<Receiver>, c: &StageCommon) -> ChannelInput {
    if let Ok(mut v) = c.m.inputs.lock() {
        v.extend(r.iter().map(|x| Arc::clone(x.shared())));
    }
    ChannelInput::new(r, Arc::from(c.info.path.as_str()))
}

fn router_error(path: &str, kind: EdgeKind) -> EngineError {
    EngineError::Graph(weir_graph::GraphError::InvalidStage {
        node: path.to_owned(),
        reason: format!("its element type cannot be routed with a {kind:?} edge"),
    })
}

/// What stops an island: a sink fed by channels (`drains`) stops only when the run is
/// cancelled, so it still takes what reached it before another sink's failure stopped the
/// producers; every other island stops with the producers.
fn stop_token(shared: &RunShared, drains: bool) -> tokio_util::sync::CancellationToken {
    if drains {
        shared.cancel.clone()
    } else {
        shared.producers.clone()
    }
}
