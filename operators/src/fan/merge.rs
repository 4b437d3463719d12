//! `Merge`, `MergePreferred` and `MergePrioritized`: many inputs into one output, in arrival order.

use super::common::{self, Heads};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::marker::PhantomData;
use std::task::Poll;
use weir_graph::{
    AsyncIo, AsyncLogic, Inlet, Junction, Node, NodePorts, Outlet, StageError, async_node,
    at_least, router_for,
};

/// Fan-in of `n` inputs, taking batches from ready inputs in round-robin order.
///
/// The input is chosen when downstream has room, and at most as many rows as it has room for
/// are taken (the rest of that input's batch waits in the merge). Its output channel keeps its
/// capacity (a plain merge has no preference to decide on demand).
///
/// Emits when: downstream has room and one of the inputs has elements available.
/// Backpressures when: downstream backpressures.
/// Completes when: all inputs complete (or, with `eager_complete`, any input completes).
/// Cancels when: downstream cancels.
/// Fails when: any input fails (immediately).
pub struct Merge<T> {
    n: usize,
    eager_complete: bool,
    _t: PhantomData<fn(T)>,
}

/// The ports of a merge: `n` inlets, one outlet.
#[derive(Debug, Clone)]
pub struct MergePorts<T> {
    /// The inputs, in order.
    pub inlets: Vec<Inlet<T>>,
    /// The output.
    pub outlet: Outlet<T>,
}

impl<T: Send + 'static> Merge<T> {
    /// A merge of `n` inputs (`n == 0` is reported as an invalid parameter when the graph is
    /// validated).
    pub fn new(n: usize) -> Self {
        Self {
            n,
            eager_complete: false,
            _t: PhantomData,
        }
    }

    /// When `true`, the merge completes as soon as any input completes.
    pub fn eager_complete(mut self, eager: bool) -> Self {
        self.eager_complete = eager;
        self
    }
}

impl<T: Send + 'static> Junction for Merge<T> {
    type Ports = MergePorts<T>;

    fn node(self) -> Node {
        let eager = self.eager_complete;
        let mut node = async_node("merge", self.n.max(1), vec![router_for::<T>()], move |_| {
            Ok((MergeLogic::<T>::new(eager, Pick::RoundRobin), ()))
        });
        node.attrs.reject(at_least("merge: inputs", self.n, 1));
        node
    }

    fn ports(p: NodePorts) -> Self::Ports {
        let (n, _) = (p.inputs(), p.outputs());
        MergePorts {
            inlets: common::inlets(&p, 0..n),
            outlet: p.outlet(0),
        }
    }
}

/// Fan-in of a preferred input and `n` secondary inputs.
///
/// The input is chosen when downstream asks (the output is demand-driven): whenever the
/// preferred input has elements at that moment they go first, so elements waiting on the
/// secondary inputs never overtake it; a secondary batch is handed out only as far as downstream
/// asked.
///
/// Emits when: downstream requests and an input has elements (the preferred one first, else a
/// secondary one, round-robin).
/// Backpressures when: downstream backpressures.
/// Completes when: all inputs complete (or, with `eager_complete`, any input completes).
/// Cancels when: downstream cancels.
/// Fails when: any input fails (immediately).
pub struct MergePreferred<T> {
    n: usize,
    eager_complete: bool,
    _t: PhantomData<fn(T)>,
}

/// The ports of a [`MergePreferred`].
#[derive(Debug, Clone)]
pub struct MergePreferredPorts<T> {
    /// The preferred input.
    pub preferred: Inlet<T>,
    /// The secondary inputs, in order.
    pub inlets: Vec<Inlet<T>>,
    /// The output.
    pub outlet: Outlet<T>,
}

impl<T: Send + 'static> MergePreferred<T> {
    /// A preferred merge with `n` secondary inputs (`n == 0` is reported as an invalid
    /// parameter when the graph is validated).
    pub fn new(n: usize) -> Self {
        Self {
            n,
            eager_complete: false,
            _t: PhantomData,
        }
    }

    /// When `true`, the merge completes as soon as any input completes.
    pub fn eager_complete(mut self, eager: bool) -> Self {
        self.eager_complete = eager;
        self
    }
}

impl<T: Send + 'static> Junction for MergePreferred<T> {
    type Ports = MergePreferredPorts<T>;

    fn node(self) -> Node {
        let eager = self.eager_complete;

        let mut node = async_node(
            "merge_preferred",
            self.n.max(1) + 1,
            vec![router_for::<T>()],
            move |_| Ok((MergeLogic::<T>::new(eager, Pick::Preferred), ())),
        )
        .with_demand_outputs();
        node.attrs
            .reject(at_least("merge_preferred: secondary inputs", self.n, 1));
        node
    }

    fn ports(p: NodePorts) -> Self::Ports {
        let (n, _) = (p.inputs(), p.outputs());
        MergePreferredPorts {
            preferred: p.inlet(0),
            inlets: common::inlets(&p, 1..n),
            outlet: p.outlet(0),
        }
    }
}

/// Fan-in of inputs with priorities: when several are ready, input `i` is chosen with a frequency
/// proportional to `priorities[i]` (deterministic smooth weighted round-robin, not random).
///
/// The input is chosen when downstream asks (the output is demand-driven), among the inputs
/// that have elements at that moment.
///
/// Emits when: downstream requests and one of the inputs has elements available.
/// Backpressures when: downstream backpressures.
/// Completes when: all inputs complete (or, with `eager_complete`, any input completes).
/// Cancels when: downstream cancels.
/// Fails when: any input fails (immediately).
pub struct MergePrioritized<T> {
    priorities: Vec<u64>,
    invalid: Option<String>,
    eager_complete: bool,
    _t: PhantomData<fn(T)>,
}

impl<T: Send + 'static> MergePrioritized<T> {
    /// A merge of `priorities.len()` inputs (no inputs, or a priority of 0, is reported as an
    /// invalid parameter when the graph is validated).
    pub fn new(priorities: impl IntoIterator<Item = usize>) -> Self {
        let given: Vec<usize> = priorities.into_iter().collect();
        let invalid = at_least("merge_prioritized: inputs", given.len(), 1).or_else(|| {
            given
                .iter()
                .find_map(|&p| at_least("merge_prioritized: priority", p, 1))
        });
        let mut priorities: Vec<u64> = given.iter().map(|&p| p.max(1) as u64).collect();
        if priorities.is_empty() {
            priorities.push(1);
        }
        Self {
            priorities,
            invalid,
            eager_complete: false,
            _t: PhantomData,
        }
    }

    /// When `true`, the merge completes as soon as any input completes.
    pub fn eager_complete(mut self, eager: bool) -> Self {
        self.eager_complete = eager;
        self
    }
}

impl<T: Send + 'static> Junction for MergePrioritized<T> {
    type Ports = MergePorts<T>;

    fn node(self) -> Node {
        let (eager, pr) = (self.eager_complete, self.priorities);
        let n = pr.len();

        let mut node = async_node("merge_prioritized", n, vec![router_for::<T>()], move |_| {
            let pick = Pick::Weighted(pr.clone(), vec![0; pr.len()]);
            Ok((MergeLogic::<T>::new(eager, pick), ()))
        })
        .with_demand_outputs();
        node.attrs.reject(self.invalid);
        node
    }

    fn ports(p: NodePorts) -> Self::Ports {
        <Merge<T> as Junction>::ports(p)
    }
}

/// How a merge chooses among ready inputs.
enum Pick {
    RoundRobin,
    /// Input 0 first, the others round-robin.
    Preferred,
    /// Smooth weighted round-robin: (weights, current scores).
    Weighted(Vec<u64>, Vec<i128>),
}

struct MergeLogic<T> {
    eager: bool,
    pick: Pick,
    _t: PhantomData<fn(T)>,
}

impl<T: Send + 'static> MergeLogic<T> {
    fn new(eager: bool, pick: Pick) -> Self {
        Self {
            eager,
            pick,
            _t: PhantomData,
        }
    }
}

/// Chooses the next input to take from, among those holding a batch.
fn choose<T: Send + 'static>(pick: &mut Pick, heads: &Heads<T>, next: &mut usize) -> Option<usize> {
    let n = heads.len();
    let rr = |from: usize, start: usize| {
        let span = n - from;
        (0..span)
            .map(|k| from + (start + k) % span)
            .find(|&i| heads.has(i))
    };
    match pick {
        Pick::RoundRobin => {
            let i = rr(0, *next)?;
            *next = i + 1;
            Some(i)
        }
        Pick::Preferred if heads.has(0) => Some(0),
        Pick::Preferred if n > 1 => {
            let i = rr(1, *next)?;
            *next = i;
            Some(i)
        }
        Pick::Preferred => None,
        Pick::Weighted(w, score) => {
            let ready: Vec<usize> = (0..n).filter(|&i| heads.has(i)).collect();
            let total: i128 = ready.iter().map(|&i| i128::from(w[i])).sum();
            for &i in &ready {
                score[i] += i128::from(w[i]);
            }
            let best = ready
                .iter()
                .copied()
                .max_by_key(|&i| (score[i], std::cmp::Reverse(i)))?;
            score[best] -= total;
            Some(best)
        }
    }
}

impl<T: Send + 'static> AsyncLogic for MergeLogic<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let Self {
            eager, mut pick, ..
        } = *self;
        async move {
            let mut heads = Heads::new(io.all_inputs::<T>()?);
            let mut out = io.output::<T>(0)?;
            let mut next = 0usize;
            loop {
                // The input is chosen when downstream asks, from what is there at that moment,
                // and only as many rows as it asked for leave.
                let batch = std::future::poll_fn(|cx| {
                    let demand = match out.poll_demand(cx) {
                        Poll::Ready(Ok(n)) => Some(n),
                        Poll::Ready(Err(_)) => return Poll::Ready(Ok(None)),
                        Poll::Pending => None,
                    };
                    if let Err(e) = heads.poll_fill(cx, |_| true) {
                        return Poll::Ready(Err(e));
                    }
                    if eager && heads.any_ended() {
                        return Poll::Ready(Ok(None));
                    }
                    if heads.all_ended() {
                        return Poll::Ready(Ok(None));
                    }
                    let Some(n) = demand else {
                        return Poll::Pending;
                    };
                    if let Some(i) = choose(&mut pick, &heads, &mut next) {
                        return Poll::Ready(Ok(Some(heads.take_up_to(i, n))));
                    }
                    Poll::Pending
                })
                .await?;
                match batch {
                    Some(v) => {
                        if out.send(v).await.is_err() {
                            return Ok(());
                        }
                    }
                    None => return Ok(()),
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fan::common::testing::{cx, data, input};

    fn ready_heads(n: usize, rounds: usize) -> Heads<u32> {
        Heads::new(
            (0..n)
                .map(|i| input((0..rounds).map(|_| data(vec![i as u32])).collect()))
                .collect(),
        )
    }

    fn picks(pick: &mut Pick, h: &mut Heads<u32>, k: usize) -> Vec<usize> {
        let (mut cx, mut next) = (cx(), 0);
        (0..k)
            .map(|_| {
                h.poll_fill(&mut cx, |_| true).unwrap();
                let i = choose(pick, h, &mut next).unwrap();
                h.take(i);
                i
            })
            .collect()
    }

    #[test]
    fn round_robin_alternates_between_ready_inputs() {
        let mut h = ready_heads(3, 10);
        assert_eq!(
            picks(&mut Pick::RoundRobin, &mut h, 6),
            vec![0, 1, 2, 0, 1, 2]
        );
    }

    #[test]
    fn preferred_input_wins_whenever_it_is_ready() {
        let mut h = ready_heads(3, 4);
        // Input 0 (preferred) first while it has data, then the others in turn.
        assert_eq!(
            picks(&mut Pick::Preferred, &mut h, 8),
            vec![0, 0, 0, 0, 1, 2, 1, 2]
        );
    }

    #[test]
    fn prioritized_picks_in_proportion_to_priorities() {
        let mut h = ready_heads(2, 100);
        let mut pick = Pick::Weighted(vec![3, 1], vec![0, 0]);
        let p = picks(&mut pick, &mut h, 40);
        assert_eq!(p.iter().filter(|&&i| i == 0).count(), 30);
        // Spread out, not bunched: never more than three of input 0 in a row.
        assert!(p.windows(4).all(|w| w.contains(&1)));
    }
}
