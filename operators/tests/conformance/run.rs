//! Runs one case: drives the probes through the case's steps, then checks the whole output, the
//! terminal signal of every output and the cancellation of every input.

use super::build::{Params, Probe, Probes, SrcKind, Val, build_with};
use super::json::Json;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::Materializer;
use weir_engine::testkit::{ProbeEvent, VirtualClock};
use weir_graph::{RunnableGraph, StageError};

/// How long one expected event may take (real time; a hang is a failure, not a wait).
const EVENT_TIMEOUT: Duration = Duration::from_secs(3);

/// One step of a case script.
#[derive(Debug, Clone)]
enum Step {
    Send(usize, Vec<i64>),
    SendEach(usize, Vec<i64>),
    Complete(usize),
    Fail(usize),
    Request(usize, u64),
    Cancel(usize),
    Expect(usize, Vec<Val>),
    ExpectNone(usize),
    ExpectComplete(usize),
    ExpectError(usize),
    ExpectCancelled(usize),
    ExpectNotCancelled(usize),
    AcceptedAtMost(usize, u64),
    AcceptedAtLeast(usize, u64),
    Settle,
    Advance(Duration),
}

/// What an output is expected to end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Terminal {
    Complete,
    Error,
    None,
    Cancelled,
}

/// A case, parsed.
#[derive(Debug)]
pub struct Case {
    /// `op/name`.
    pub id: String,
    /// Why the case is expected to fail today (`None`: it must pass).
    pub pending: Option<String>,
    /// The case only makes sense in Python (e.g. a negative count); skipped here.
    pub only_py: bool,
    op: String,
    params: Json,
    steps: Vec<Step>,
    /// Demand the final phase grants every output (`None`: everything).
    final_request: Option<u64>,
    outputs: Vec<Vec<Val>>,
    terminals: Vec<Terminal>,
    error: String,
    cancelled: Vec<Option<bool>>,
    build_error: Option<String>,
    /// Outputs are compared as multisets (fan-in of concurrent inputs).
    unordered: bool,
    /// Input ports the script completed or failed.
    ended_inputs: Vec<usize>,
    batch_size: usize,
    buffer_rows: usize,
    source: SrcKind,
}

fn ints(j: &Json, what: &str) -> Result<Vec<i64>, String> {
    j.as_arr()
        .ok_or_else(|| format!("{what}: expected an array"))?
        .iter()
        .map(|x| x.as_i64().ok_or_else(|| format!("{what}: integers only")))
        .collect()
}

fn vals(j: &Json, what: &str) -> Result<Vec<Val>, String> {
    j.as_arr()
        .ok_or_else(|| format!("{what}: expected an array"))?
        .iter()
        .map(Val::from_json)
        .collect()
}

fn port(j: &Json, k: &str) -> usize {
    j.get(k).and_then(Json::as_i64).unwrap_or(0) as usize
}

fn terminal(s: &str) -> Result<Terminal, String> {
    Ok(match s {
        "complete" => Terminal::Complete,
        "error" => Terminal::Error,
        "none" => Terminal::None,
        "cancelled" => Terminal::Cancelled,
        _ => return Err(format!("unknown terminal {s:?}")),
    })
}

fn parse_step(j: &Json) -> Result<Step, String> {
    let m = j.as_obj().ok_or("a step is an object")?;
    let (k, v) = m
        .iter()
        .find(|(k, _)| !matches!(k.as_str(), "in" | "out"))
        .ok_or("empty step")?;
    let n = || {
        v.as_i64()
            .map(|x| x as usize)
            .ok_or(format!("{k}: a port number"))
    };
    Ok(match k.as_str() {
        "send" => Step::Send(port(j, "in"), ints(v, "send")?),
        "send_each" => Step::SendEach(port(j, "in"), ints(v, "send_each")?),
        "complete" => Step::Complete(n()?),
        "fail" => Step::Fail(n()?),
        "request" => Step::Request(port(j, "out"), n()? as u64),
        "cancel" => Step::Cancel(n()?),
        "expect" => Step::Expect(port(j, "out"), vals(v, "expect")?),
        "expect_none" => Step::ExpectNone(n()?),
        "expect_complete" => Step::ExpectComplete(n()?),
        "expect_error" => Step::ExpectError(n()?),
        "expect_cancelled" => Step::ExpectCancelled(n()?),
        "expect_not_cancelled" => Step::ExpectNotCancelled(n()?),
        "accepted_at_most" => Step::AcceptedAtMost(port(j, "in"), n()? as u64),
        "accepted_at_least" => Step::AcceptedAtLeast(port(j, "in"), n()? as u64),
        "settle" => Step::Settle,
        "advance_ms" => Step::Advance(Duration::from_millis(n()? as u64)),
        _ => return Err(format!("unknown step {k:?}")),
    })
}

impl Case {
    /// Parses a case of operator file `file`.
    pub fn parse(j: &Json) -> Result<Case, String> {
        let op = j
            .get("op")
            .and_then(Json::as_str)
            .ok_or("case without \"op\"")?;
        let name = j
            .get("name")
            .and_then(Json::as_str)
            .ok_or("case without \"name\"")?;
        let id = format!("{op}: {name}");
        let ctx = |e: String| format!("{id}: {e}");
        let expect = j.get("expect").ok_or_else(|| ctx("no \"expect\"".into()))?;
        let mut c = Case {
            // `pending_rust` overrides `pending` for this API; an empty reason clears it.
            pending: j
                .get("pending_rust")
                .or_else(|| j.get("pending"))
                .and_then(Json::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            only_py: j.get("only_py").and_then(Json::as_bool).unwrap_or(false),
            op: op.to_owned(),
            params: j
                .get("params")
                .cloned()
                .unwrap_or(Json::Obj(Default::default())),
            steps: Vec::new(),
            final_request: j.get("request").and_then(Json::as_i64).map(|n| n as u64),
            outputs: Vec::new(),
            terminals: Vec::new(),
            error: expect
                .get("error")
                .and_then(Json::as_str)
                .unwrap_or("boom")
                .to_owned(),
            cancelled: Vec::new(),
            build_error: expect
                .get("build_error")
                .and_then(Json::as_str)
                .map(str::to_owned),
            unordered: expect
                .get("unordered")
                .and_then(Json::as_bool)
                .unwrap_or(false),
            ended_inputs: Vec::new(),
            batch_size: j.get("batch_size").and_then(Json::as_i64).unwrap_or(4) as usize,
            buffer_rows: j.get("buffer_rows").and_then(Json::as_i64).unwrap_or(16) as usize,
            source: SrcKind::parse(j.get("source")).map_err(|e| format!("{id}: {e}"))?,
            id: id.clone(),
        };
        if c.build_error.is_some() {
            return Ok(c);
        }
        c.outputs = match (expect.get("output"), expect.get("outputs")) {
            (Some(o), None) => vec![vals(o, "output").map_err(ctx)?],
            (None, Some(os)) => os
                .as_arr()
                .ok_or_else(|| ctx("outputs: an array".into()))?
                .iter()
                .map(|o| vals(o, "outputs"))
                .collect::<Result<_, _>>()
                .map_err(ctx)?,
            _ => return Err(ctx("exactly one of \"output\" / \"outputs\"".into())),
        };
        let n_out = c.outputs.len();
        c.terminals = match (expect.get("terminal"), expect.get("terminals")) {
            (Some(t), None) => {
                vec![terminal(t.as_str().unwrap_or("")).map_err(ctx)?; n_out]
            }
            (None, Some(ts)) => ts
                .as_arr()
                .ok_or_else(|| ctx("terminals: an array".into()))?
                .iter()
                .map(|t| terminal(t.as_str().unwrap_or("")))
                .collect::<Result<_, _>>()
                .map_err(ctx)?,
            _ => return Err(ctx("exactly one of \"terminal\" / \"terminals\"".into())),
        };
        if c.terminals.len() != n_out {
            return Err(ctx("one terminal per output".into()));
        }
        // Inputs: the short form (`input`/`inputs` + `then`/`thens`) or explicit `steps`.
        let inputs: Vec<Vec<i64>> = match (j.get("input"), j.get("inputs")) {
            (Some(i), None) => vec![ints(i, "input").map_err(ctx)?],
            (None, Some(is)) => is
                .as_arr()
                .ok_or_else(|| ctx("inputs: an array".into()))?
                .iter()
                .map(|i| ints(i, "inputs"))
                .collect::<Result<_, _>>()
                .map_err(ctx)?,
            (None, None) => Vec::new(),
            _ => return Err(ctx("not both \"input\" and \"inputs\"".into())),
        };
        if let Some(steps) = j.get("steps") {
            if !inputs.is_empty() {
                return Err(ctx("\"steps\" replace \"input\"".into()));
            }
            for s in steps
                .as_arr()
                .ok_or_else(|| ctx("steps: an array".into()))?
            {
                c.steps.push(parse_step(s).map_err(ctx)?);
            }
        } else {
            let thens: Vec<String> = match (j.get("then"), j.get("thens")) {
                (Some(t), None) => vec![t.as_str().unwrap_or("").to_owned(); inputs.len()],
                (None, Some(ts)) => ts
                    .as_arr()
                    .ok_or_else(|| ctx("thens: an array".into()))?
                    .iter()
                    .map(|t| t.as_str().unwrap_or("").to_owned())
                    .collect(),
                (None, None) => vec!["complete".to_owned(); inputs.len()],
                _ => return Err(ctx("not both \"then\" and \"thens\"".into())),
            };
            let cancel_after = j.get("cancel_after").and_then(Json::as_i64);
            if let Some(k) = cancel_after {
                c.steps.push(Step::Request(0, k as u64));
            } else if let Some(n) = c.final_request {
                for o in 0..n_out {
                    c.steps.push(Step::Request(o, n));
                }
            }
            for (i, xs) in inputs.iter().enumerate() {
                if !xs.is_empty() {
                    c.steps.push(Step::Send(i, xs.clone()));
                }
            }
            for (i, t) in thens.iter().enumerate() {
                match t.as_str() {
                    "complete" => c.steps.push(Step::Complete(i)),
                    "fail" => c.steps.push(Step::Fail(i)),
                    "open" => {}
                    _ => return Err(ctx(format!("unknown then {t:?}"))),
                }
            }
            if let Some(k) = cancel_after {
                let k = k as usize;
                let first = c.outputs[0]
                    .get(..k)
                    .ok_or_else(|| ctx("cancel_after exceeds the expected output".into()))?;
                c.steps.push(Step::Expect(0, first.to_vec()));
                c.steps.push(Step::Cancel(0));
            }
        }
        for s in &c.steps {
            if let Step::Complete(i) | Step::Fail(i) = s {
                c.ended_inputs.push(*i);
            }
        }
        c.cancelled = match expect.get("cancelled") {
            None => Vec::new(),
            Some(Json::Bool(b)) => vec![Some(*b)],
            Some(Json::Arr(v)) => v.iter().map(Json::as_bool).collect(),
            Some(_) => return Err(ctx("cancelled: a boolean or an array".into())),
        };
        Ok(c)
    }

    /// Runs the case; `Err` says what differed.
    pub async fn run(&self) -> Result<(), String> {
        let built = std::panic::catch_unwind(|| {
            build_with(&self.op, &Params(&self.params), self.source.clone())
        });
        // Time is virtual: it moves only at `advance_ms` steps.
        let clock = VirtualClock::new();
        let m = Materializer::new()
            .with_clock(Arc::new(clock.clone()))
            .with_batch_size(self.batch_size)
            .with_buffer_rows(self.buffer_rows);
        if let Some(want) = &self.build_error {
            let msg = match built {
                Err(p) => panic_msg(p),
                Ok(Err(e)) => e,
                Ok(Ok(g)) => match m.materialize(&g) {
                    Err(e) => e.to_string(),
                    Ok((_, h)) => {
                        h.cancel();
                        return Err("built and ran; expected a build error".into());
                    }
                },
            };
            return if msg.to_lowercase().contains(&want.to_lowercase()) {
                Ok(())
            } else {
                Err(format!("build error {msg:?} does not mention {want:?}"))
            };
        }
        let g: RunnableGraph<Probes> = match built {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => return Err(format!("cannot build: {e}")),
            Err(p) => return Err(format!("building panicked: {}", panic_msg(p))),
        };
        let ((srcs, mut sinks), handle) = m.materialize(&g).map_err(|e| e.to_string())?;
        if sinks.len() != self.outputs.len() {
            return Err(format!(
                "the graph has {} outputs, the case expects {}",
                sinks.len(),
                self.outputs.len()
            ));
        }
        let mut seen: Vec<Vec<Val>> = vec![Vec::new(); sinks.len()];
        let mut ends: Vec<Option<Terminal>> = vec![None; sinks.len()];
        let mut errors: Vec<String> = vec![String::new(); sinks.len()];
        let src = |i: usize| srcs.get(i).ok_or(format!("no input {i}"));
        for (n, step) in self.steps.iter().enumerate() {
            let at = |e: String| format!("step {n} {step:?}: {e}");
            match step {
                Step::Send(i, xs) => src(*i)
                    .map_err(at)?
                    .send_all(xs.clone())
                    .await
                    .map_err(at)?,
                Step::SendEach(i, xs) => {
                    for x in xs {
                        src(*i).map_err(at)?.send_all(vec![*x]).await.map_err(at)?;
                        settle().await;
                    }
                }
                Step::Complete(i) => src(*i).map_err(at)?.complete(),
                Step::Fail(i) => src(*i).map_err(at)?.fail(StageError::user("boom")),
                Step::Request(o, k) => sink(&sinks, *o).map_err(at)?.request(*k),
                Step::Cancel(o) => {
                    sink(&sinks, *o).map_err(at)?.cancel();
                    ends[*o] = Some(Terminal::Cancelled);
                }
                Step::Expect(o, want) => {
                    let s = sink_mut(&mut sinks, *o).map_err(at)?;
                    for w in want {
                        match timed(s.next_event()).await.map_err(at)? {
                            ProbeEvent::Next(x) if x == *w => seen[*o].push(x),
                            other => {
                                return Err(at(format!(
                                    "expected {w:?}, got {other:?} after {:?}",
                                    seen[*o]
                                )));
                            }
                        }
                    }
                }
                Step::ExpectNone(o) => {
                    settle().await;
                    let s = sink_mut(&mut sinks, *o).map_err(at)?;
                    if let Some(e) = s.try_next_event() {
                        return Err(at(format!("expected nothing, got {e:?}")));
                    }
                }
                Step::ExpectComplete(o) | Step::ExpectError(o) => {
                    let s = sink_mut(&mut sinks, *o).map_err(at)?;
                    let e = timed(s.next_event()).await.map_err(at)?;
                    let ok = match (step, &e) {
                        (Step::ExpectComplete(_), ProbeEvent::Complete) => true,
                        (Step::ExpectError(_), ProbeEvent::Error(m)) => m.contains(&self.error),
                        _ => false,
                    };
                    if !ok {
                        return Err(at(format!("got {e:?}")));
                    }
                    if let ProbeEvent::Error(m) = &e {
                        errors[*o] = m.clone();
                    }
                    ends[*o] = Some(if matches!(e, ProbeEvent::Complete) {
                        Terminal::Complete
                    } else {
                        Terminal::Error
                    });
                }
                Step::ExpectCancelled(i) => {
                    let s = src(*i).map_err(at)?;
                    s.probe().map_err(at)?;
                    if !s.cancelled_within(EVENT_TIMEOUT).await {
                        return Err(at(format!("input not cancelled within {EVENT_TIMEOUT:?}")));
                    }
                }
                Step::ExpectNotCancelled(i) => {
                    settle().await;
                    if src(*i).map_err(at)?.probe().map_err(at)?.is_cancelled() {
                        return Err(at("input was cancelled".into()));
                    }
                }
                Step::AcceptedAtMost(i, k) => {
                    settle().await;
                    let d = src(*i).map_err(at)?.probe().map_err(at)?.delivered();
                    if d > *k {
                        return Err(at(format!("{d} elements accepted")));
                    }
                }
                Step::AcceptedAtLeast(i, k) => {
                    let s = src(*i).map_err(at)?.probe().map_err(at)?;
                    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
                    while s.delivered() < *k && tokio::time::Instant::now() < deadline {
                        settle().await;
                    }
                    if s.delivered() < *k {
                        return Err(at(format!("only {} elements accepted", s.delivered())));
                    }
                }
                Step::Settle => settle().await,
                Step::Advance(d) => {
                    settle().await;
                    clock.advance(*d);
                    settle().await;
                }
            }
        }
        // Final phase: collect the rest of every output (demand goes to all of them first, so a
        // fan-out that waits for every output is not stuck behind the one drained first).
        if self.final_request.is_none() {
            for (o, s) in sinks.iter().enumerate() {
                if ends[o].is_none() {
                    s.request(u64::MAX / 4);
                }
            }
        }
        for (o, s) in sinks.iter_mut().enumerate() {
            if ends[o].is_some() {
                continue;
            }
            if self.terminals[o] == Terminal::None {
                settle().await;
                while let Some(e) = s.try_next_event() {
                    if record(e, &mut seen[o], &mut ends[o], &mut errors[o]) {
                        break;
                    }
                }
            } else {
                loop {
                    let e = timed(s.next_event()).await.map_err(|e| {
                        format!("output {o}: no terminal signal ({e}); got {:?}", seen[o])
                    })?;
                    if record(e, &mut seen[o], &mut ends[o], &mut errors[o]) {
                        break;
                    }
                }
            }
        }
        let mut problems = Vec::new();
        for o in 0..sinks.len() {
            let (mut got, mut want) = (seen[o].clone(), self.outputs[o].clone());
            if self.unordered {
                got.sort_by_key(|v| format!("{v:?}"));
                want.sort_by_key(|v| format!("{v:?}"));
            }
            if got != want {
                problems.push(format!(
                    "output {o}: got {:?}, want {:?}",
                    seen[o], self.outputs[o]
                ));
            }
            let got = ends[o].unwrap_or(Terminal::None);
            if got != self.terminals[o] {
                problems.push(format!(
                    "output {o}: ended with {got:?} {}, want {:?}",
                    errors[o], self.terminals[o]
                ));
            } else if got == Terminal::Error && !errors[o].contains(&self.error) {
                problems.push(format!(
                    "output {o}: error {:?} does not mention {:?}",
                    errors[o], self.error
                ));
            }
        }
        for (i, want) in self.cancelled.iter().enumerate() {
            let Some(want) = want else { continue };
            let s = src(i)?;
            if s.probe().is_err() && self.ended_inputs.contains(&i) {
                // A completed queue says `QueueClosed` too: it was not cancelled.
                if *want {
                    problems.push(format!("input {i}: completed by the case, not cancelled"));
                }
            } else if *want {
                if !s.cancelled_within(EVENT_TIMEOUT).await {
                    problems.push(format!("input {i}: not cancelled"));
                }
            } else {
                settle().await;
                if s.cancelled_within(Duration::ZERO).await {
                    problems.push(format!("input {i}: cancelled"));
                }
            }
        }
        // Once every output is done and every input ended or was cancelled, the run must end.
        let outputs_done = ends.iter().all(|e| {
            matches!(
                e,
                Some(Terminal::Complete | Terminal::Error | Terminal::Cancelled)
            )
        });
        let inputs_done = (0..srcs.len())
            .all(|i| self.ended_inputs.contains(&i) || self.cancelled.get(i) == Some(&Some(true)));
        if outputs_done && inputs_done && problems.is_empty() {
            if tokio::time::timeout(EVENT_TIMEOUT, handle.wait())
                .await
                .is_err()
            {
                problems.push("the run did not end".into());
            }
        } else {
            for s in &sinks {
                s.cancel();
            }
            for s in &srcs {
                s.complete();
            }
            handle.cancel();
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Records one final-phase event; `true` at a terminal signal.
fn record(
    e: ProbeEvent<Val>,
    seen: &mut Vec<Val>,
    end: &mut Option<Terminal>,
    err: &mut String,
) -> bool {
    match e {
        ProbeEvent::Next(x) => {
            seen.push(x);
            false
        }
        ProbeEvent::Complete => {
            *end = Some(Terminal::Complete);
            true
        }
        ProbeEvent::Error(m) => {
            *end = Some(Terminal::Error);
            *err = m;
            true
        }
    }
}

fn sink(s: &[Probe], o: usize) -> Result<&Probe, String> {
    s.get(o).ok_or(format!("no output {o}"))
}

fn sink_mut(s: &mut [Probe], o: usize) -> Result<&mut Probe, String> {
    s.get_mut(o).ok_or(format!("no output {o}"))
}

async fn timed<T>(f: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(EVENT_TIMEOUT, f)
        .await
        .map_err(|_| format!("nothing within {EVENT_TIMEOUT:?}"))
}

/// Lets every stage that can make progress do so (no sleeping on the expected path: a stage that
/// would emit wrongly gets the chance to, so absence checks are meaningful).
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

fn panic_msg(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".into())
}
