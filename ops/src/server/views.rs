//! The JSON documents of the API, built from a [`RunView`] and the registry's samples (shapes
//! in `docs/ops-api.md`).

use crate::Registry;
use crate::registry::StageHistory;
use serde_json::{Value, json};
use std::time::SystemTime;
use weir_engine::observe::CheckpointStatus;
use weir_engine::plan::{Endpoint, IslandKind, PhysicalPlan};
use weir_engine::{RunState, RunView};
use weir_graph::EdgeKind;

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `running`, `finished`, `cancelled` or `failed`, and the failure's text.
pub(crate) fn state(run: &RunView) -> (&'static str, Option<String>) {
    match run.state() {
        RunState::Running => ("running", None),
        RunState::Finished => ("finished", None),
        RunState::Cancelled => ("cancelled", None),
        RunState::Failed(e) => ("failed", Some(e.to_string())),
    }
}

/// One entry of `GET /api/v1/jobs`.
pub(crate) fn summary(run: &RunView, pid: u32) -> Value {
    json!({
        "id": run.id(),
        "name": run.name(),
        "state": state(run).0,
        "started_at_ms": unix_ms(run.started_at()),
        "pid": pid,
    })
}

/// `GET /api/v1/jobs/{id}`: the summary plus failure, uptime, stages and checkpoints.
pub(crate) fn detail(reg: &Registry, run: &RunView, pid: u32, history: bool) -> Value {
    let mut v = summary(run, pid);
    let (_, error) = state(run);
    let ended = reg.ended_at(run.id());
    let until = ended.unwrap_or_else(SystemTime::now);
    let uptime = until
        .duration_since(run.started_at())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let latest = reg.latest(run.id());
    let mut hist: std::collections::HashMap<(String, usize), StageHistory> = if history {
        reg.history(run.id())
            .into_iter()
            .map(|h| ((h.path.clone(), h.subtask), h))
            .collect()
    } else {
        Default::default()
    };
    let mut metrics = run.metrics();
    metrics.sort_by(|a, b| (&a.path, a.subtask).cmp(&(&b.path, b.subtask)));
    let stages: Vec<Value> = metrics
        .iter()
        .map(|m| {
            let key = (m.path.clone(), m.subtask);
            let s = latest.get(&key);
            let mut o = json!({
                "path": m.path,
                "stage_id": format!("{:016x}", m.stage_id.0),
                "subtask": m.subtask,
                "island": m.island,
                "elements_in": m.elements_in,
                "elements_out": m.elements_out,
                "batches_in": m.batches_in,
                "batches_out": m.batches_out,
                "queue_depth": m.queue_depth,
                "queue_peak": m.queue_peak,
                "queue_peak_bytes": m.queue_peak_bytes,
                "queue_capacity": m.queue_capacity,
                "bytes_in": m.bytes_in,
                "bytes_out": m.bytes_out,
                "busy_ns": m.busy_ns,
                "backpressured_ns": m.backpressured_ns,
                "idle_ns": m.idle_ns,
                "restarts": m.restarts,
                "failures": m.failures,
                "dead_letters": m.dead_letters,
                "watermark_ms": m.watermark_ms,
                "in_rate": s.map_or(0.0, |s| s.in_rate),
                "out_rate": s.map_or(0.0, |s| s.out_rate),
                "busy": s.map_or(0.0, |s| s.busy),
                "backpressured": s.map_or(0.0, |s| s.backpressured),
                "idle": s.map_or(0.0, |s| s.idle),
            });
            if history {
                let samples = hist.remove(&key).map(|h| h.samples).unwrap_or_default();
                o["history"] = json!(samples);
            }
            o
        })
        .collect();
    v["error"] = json!(error);
    v["uptime_ms"] = json!(uptime);
    v["ended_at_ms"] = json!(ended.map(unix_ms));
    v["live_tasks"] = json!(run.live_tasks());
    v["stages"] = Value::Array(stages);
    v["checkpoints"] = checkpoints_summary(run);
    v["watermark_lag_ms"] = json!(run.watermark_lag().map(duration_ms));
    v["stall"] = run.stall().map_or(
        Value::Null,
        |s| json!({"stage": s.stage, "subtask": s.subtask, "since_ms": s.since_ms}),
    );
    v
}

/// `GET /api/v1/jobs/{id}/errors`: the run's newest supervised failures and dead letters.
pub(crate) fn errors(run: &RunView) -> Value {
    let list: Vec<Value> = run
        .recent_errors()
        .into_iter()
        .map(|e| {
            json!({
                "stage": e.stage,
                "subtask": e.subtask,
                "error": e.error,
                "element": e.element,
                "at_ms": e.at_ms,
                "dead_letter": e.dead_letter,
            })
        })
        .collect();
    json!({"id": run.id(), "errors": list})
}

/// The checkpoint summary inside a job's detail (`null` when the run does not checkpoint).
fn checkpoints_summary(run: &RunView) -> Value {
    let Some(c) = run.checkpoints() else {
        return Value::Null;
    };
    let t = c.totals();
    let last = c
        .history()
        .into_iter()
        .rev()
        .find(|r| r.status == CheckpointStatus::Completed);
    json!({
        "latest_completed": c.latest_completed(),
        "restored": c.restored(),
        "completed": t.completed,
        "failed": t.failed,
        "skipped": t.skipped,
        "last_duration_ms": last.as_ref().map(|r| duration_ms(r.duration)),
        "last_size_bytes": last.as_ref().map(|r| r.bytes),
    })
}

fn duration_ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `GET /api/v1/jobs/{id}/checkpoints`.
pub(crate) fn checkpoints(run: &RunView) -> Value {
    let Some(c) = run.checkpoints() else {
        return json!({
            "id": run.id(),
            "enabled": false,
            "latest_completed": null,
            "restored": null,
            "totals": {"completed": 0, "failed": 0, "skipped": 0},
            "history": [],
            "completed": [],
            "failed": [],
            "skipped": [],
            "started_empty": [],
        });
    };
    let completed: Vec<Value> = c
        .durations()
        .iter()
        .map(|(id, d)| json!({"id": id, "duration_ms": duration_ms(*d)}))
        .collect();
    let started_empty: Vec<Value> = c
        .started_empty()
        .iter()
        .map(|(s, sub)| json!({"stage_id": format!("{:016x}", s.0), "subtask": sub}))
        .collect();
    let history: Vec<Value> = c
        .history()
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "status": r.status.as_str(),
                "reason": match &r.status {
                    CheckpointStatus::Failed(why) => Some(why.as_str()),
                    _ => None,
                },
                "started_at_ms": r.started_at_ms,
                "duration_ms": duration_ms(r.duration),
                "bytes": r.bytes,
            })
        })
        .collect();
    let t = c.totals();
    json!({
        "id": run.id(),
        "enabled": true,
        "latest_completed": c.latest_completed(),
        "restored": c.restored(),
        "totals": {"completed": t.completed, "failed": t.failed, "skipped": t.skipped},
        "history": history,
        "completed": completed,
        "failed": c.failed(),
        "skipped": c.skipped(),
        "started_empty": started_empty,
    })
}

fn edge_kind(k: EdgeKind) -> &'static str {
    match k {
        EdgeKind::Forward => "forward",
        EdgeKind::Rebalance => "rebalance",
        EdgeKind::Hash => "hash",
        EdgeKind::Broadcast => "broadcast",
    }
}

fn endpoint(e: &Endpoint) -> Value {
    match e {
        Endpoint::Island { island, port } => json!({"island": island, "port": port}),
        Endpoint::External(k) => json!({"external": k}),
    }
}

/// `GET /api/v1/jobs/{id}/plan` for a run that kept its plan.
pub(crate) fn plan(run: &RunView, p: &PhysicalPlan) -> Value {
    let islands: Vec<Value> = p
        .islands
        .iter()
        .map(|isl| {
            let stages: Vec<Value> = isl
                .nodes
                .iter()
                .map(|&n| {
                    let nd = &p.module.nodes[n];
                    json!({
                        "node": n,
                        "name": nd.display_name(),
                        "path": p.module.node_path(n),
                        "uid": nd.attrs.uid.as_deref(),
                        "parallelism": p.parallelism.get(n).copied().unwrap_or(1),
                    })
                })
                .collect();
            json!({
                "id": isl.id,
                "kind": match isl.kind { IslandKind::Chain => "chain", IslandKind::Async => "async" },
                "parallelism": isl.parallelism,
                "executor": isl.executor.to_string(),
                "stages": stages,
            })
        })
        .collect();
    let edges: Vec<Value> = p
        .edges
        .iter()
        .map(|e| {
            json!({
                "from": endpoint(&e.from),
                "to": endpoint(&e.to),
                "from_stage": node_of(p, &e.from, false).map(|n| p.module.node_path(n)),
                "to_stage": node_of(p, &e.to, true).map(|n| p.module.node_path(n)),
                "kind": edge_kind(e.kind),
                "buffer_rows": e.buffer_rows,
                "on_demand": e.on_demand,
            })
        })
        .collect();
    json!({
        "id": run.id(),
        "islands": islands,
        "edges": edges,
        "mermaid": p.to_mermaid(),
        "dot": crate::viz::render_physical(p, crate::viz::Format::Dot),
    })
}

/// The node an edge end attaches to (`None`: an open port of the module).
pub(crate) fn node_of(p: &PhysicalPlan, e: &Endpoint, input: bool) -> Option<usize> {
    match e {
        Endpoint::Island { island, port } => {
            let isl = p.islands.get(*island)?;
            let ports = if input { &isl.inputs } else { &isl.outputs };
            ports.get(*port).map(|r| r.node)
        }
        Endpoint::External(_) => None,
    }
}
