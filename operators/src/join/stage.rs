//! The two-input join stage: reads both keyed inputs, combines their watermarks as the
//! minimum (the engine's `Aligner`, which also aligns markers and barriers), and hands
//! elements and watermarks to a [`JoinCore`].

use super::JoinOutput;
use crate::time::Timestamped;
use crate::time::util::{maybe, race};
use futures::future::{BoxFuture, Either, FutureExt};
use std::marker::PhantomData;
use std::sync::Arc;
use weir_graph::{
    Aligner, AsyncIo, AsyncLogic, Control, Event, Inlet, Junction, KeyGroupRange, Node, NodePorts,
    Outlet, Output, Signal, Snapshot, StageCheckpoint, StageCx, StageError, async_node, router_for,
};

/// The output of a join stage.
pub(crate) type Out<K, O, L, R> = Vec<JoinOutput<K, O, L, R>>;

/// The state and rules of one join.
pub(crate) trait JoinCore<K, L, R, O>: Send + 'static {
    /// A left element arrived.
    fn on_left(&mut self, key: K, element: Timestamped<L>, out: &mut Out<K, O, L, R>);
    /// A right element arrived.
    fn on_right(&mut self, key: K, element: Timestamped<R>, out: &mut Out<K, O, L, R>);
    /// The combined watermark advanced to `ms`.
    fn on_watermark(&mut self, ms: i64, out: &mut Out<K, O, L, R>);
    /// Both inputs completed.
    fn on_finish(&mut self, out: &mut Out<K, O, L, R>);
    /// The state as a barrier passes (the common `no_codec` error without a codec).
    fn save(&self) -> Result<Snapshot, StageError>;
    /// Restores `snapshots` into the fresh core of the subtask owning `owned`: its own one
    /// (`rescaled` false) or every old subtask's after a change of parallelism.
    fn load(
        &mut self,
        snapshots: &[Snapshot],
        owned: KeyGroupRange,
        rescaled: bool,
    ) -> Result<(), StageError>;
}

/// The ports of a join stage.
pub(crate) struct JoinPorts<K, L, R, O> {
    pub(crate) left: Inlet<(K, Timestamped<L>)>,
    pub(crate) right: Inlet<(K, Timestamped<R>)>,
    pub(crate) outlet: Outlet<JoinOutput<K, O, L, R>>,
}

/// The join stage as a junction (two inputs, one output, parallel by key group).
pub(crate) struct JoinNode<K, L, R, O, M> {
    name: &'static str,
    make: M,
    _t: PhantomData<fn(K, L, R) -> O>,
}

impl<K, L, R, O, M> JoinNode<K, L, R, O, M> {
    /// A join stage named `name` whose subtasks each start from `make()`.
    pub(crate) fn new(name: &'static str, make: M) -> Self {
        Self {
            name,
            make,
            _t: PhantomData,
        }
    }
}

impl<K, L, R, O, C, M> Junction for JoinNode<K, L, R, O, M>
where
    K: Send + 'static,
    L: Send + 'static,
    R: Send + 'static,
    O: Send + 'static,
    C: JoinCore<K, L, R, O>,
    M: Fn() -> C + Send + Sync + 'static,
{
    type Ports = JoinPorts<K, L, R, O>;

    fn node(self) -> Node {
        let make = self.make;
        async_node(
            self.name,
            2,
            vec![router_for::<JoinOutput<K, O, L, R>>()],
            move |info| {
                Ok((
                    JoinLogic {
                        core: make(),
                        owned: KeyGroupRange::for_subtask(info.subtask, info.parallelism),
                        _t: PhantomData::<fn(K, L, R) -> O>,
                    },
                    (),
                ))
            },
        )
        .with_parallelizable(true)
    }

    fn ports(p: NodePorts) -> Self::Ports {
        JoinPorts {
            left: p.inlet(0),
            right: p.inlet(1),
            outlet: p.outlet(0),
        }
    }
}

struct JoinLogic<K, L, R, O, C> {
    core: C,
    /// The key groups this subtask owns.
    owned: KeyGroupRange,
    _t: PhantomData<fn(K, L, R) -> O>,
}

/// Sends the rows in `out` (if any); `false` once downstream is gone.
async fn send<T: Send + 'static>(output: &mut Output<T>, out: &mut Vec<T>) -> bool {
    if out.is_empty() {
        return true;
    }
    output.send(std::mem::take(out)).await.is_ok()
}

/// Applies the controls the aligner released: watermarks reach the core, a barrier
/// acknowledges the core's state (a join without codec fails, naming itself), then every
/// control goes on.
fn released<K, L, R, O, C: JoinCore<K, L, R, O>>(
    core: &mut C,
    controls: Vec<Control>,
    out: &mut Out<K, O, L, R>,
    forward: &mut Vec<Control>,
    scx: &StageCx<'_>,
    ck: Option<&Arc<dyn StageCheckpoint>>,
) -> Result<(), StageError> {
    for c in controls {
        match c {
            Control::Watermark { ms } => core.on_watermark(ms, out),
            Control::Barrier { id } => {
                let snap = core.save().map_err(|e| e.with_stage(&scx.info().path))?;
                if let Some(ck) = ck {
                    ck.ack(id, Some(snap));
                }
            }
            _ => {}
        }
        forward.push(c);
    }
    Ok(())
}

impl<K, L, R, O, C> AsyncLogic for JoinLogic<K, L, R, O, C>
where
    K: Send + 'static,
    L: Send + 'static,
    R: Send + 'static,
    O: Send + 'static,
    C: JoinCore<K, L, R, O>,
{
    fn handles_control(&self) -> bool {
        true
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        self.core
            .load(std::slice::from_ref(snapshot), self.owned, false)
    }

    fn restore_rescaled(
        &mut self,
        snapshots: &[Snapshot],
        key_groups: KeyGroupRange,
    ) -> Result<(), StageError> {
        self.owned = key_groups;
        self.core.load(snapshots, key_groups, true)
    }

    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut core = self.core;
            let mut left = io.input::<(K, Timestamped<L>)>(0)?;
            let mut right = io.input::<(K, Timestamped<R>)>(1)?;
            let mut output = io.output::<JoinOutput<K, O, L, R>>(0)?;
            let mut aligner = Aligner::new(2);
            let (mut left_open, mut right_open) = (true, true);
            let mut out = Vec::new();
            let mut forward = Vec::new();
            let ck = io.checkpoint.clone();
            while left_open || right_open {
                // A side that delivered a barrier waits until the other delivered it too, so no
                // element behind the barrier reaches the state it snapshots.
                let l = (left_open && aligner.waiting_barriers(0).next().is_none())
                    .then(|| left.recv_signal());
                let r = (right_open && aligner.waiting_barriers(1).next().is_none())
                    .then(|| right.recv_signal());
                let signal = race(race(maybe(l), maybe(r)), output.closed()).await;
                let scx = io.stage_cx();
                let step = match signal {
                    Either::Right(()) => return Ok(()),
                    Either::Left(Either::Left(Signal::Event(Event::Batch(b)))) => {
                        for (k, x) in b {
                            core.on_left(k, x, &mut out);
                        }
                        Ok(())
                    }
                    Either::Left(Either::Right(Signal::Event(Event::Batch(b)))) => {
                        for (k, x) in b {
                            core.on_right(k, x, &mut out);
                        }
                        Ok(())
                    }
                    Either::Left(side) => {
                        let (i, s) = match side {
                            Either::Left(s) => (0, s.map_never()),
                            Either::Right(s) => (1, s.map_never()),
                        };
                        match s {
                            Tail::Control(c) => {
                                let rel = aligner.arrive(i, c);
                                released(&mut core, rel, &mut out, &mut forward, &scx, ck.as_ref())
                            }
                            Tail::End => {
                                if i == 0 {
                                    left_open = false;
                                } else {
                                    right_open = false;
                                }
                                let rel = aligner.end(i);
                                released(&mut core, rel, &mut out, &mut forward, &scx, ck.as_ref())
                            }
                            Tail::Error(e) => Err(e),
                        }
                    }
                };
                if !send(&mut output, &mut out).await {
                    return step;
                }
                step?;
                for c in forward.drain(..) {
                    output.control(c);
                }
            }
            core.on_finish(&mut out);
            send(&mut output, &mut out).await;
            Ok(())
        }
        .boxed()
    }
}

/// A signal other than a batch (the batches of each side are handled where they are typed).
enum Tail {
    Control(Control),
    End,
    Error(StageError),
}

trait MapNever {
    fn map_never(self) -> Tail;
}

impl<T> MapNever for Signal<T> {
    fn map_never(self) -> Tail {
        match self {
            Signal::Control(c) => Tail::Control(c),
            Signal::Event(Event::End) => Tail::End,
            Signal::Event(Event::Error(e)) => Tail::Error(e),
            Signal::Event(Event::Batch(_)) => Tail::Error(StageError::internal(
                "join: a batch reached the control path",
            )),
        }
    }
}
