//! Property tests: every linear simple operator, composed at random, gives the same result as a
//! plain `Vec` model whatever the batch size and wherever async boundaries fall, including a stage
//! that fails in the middle of a batch (what came before the failing element is delivered),
//! stages whose user code panics or errs mid-batch under Resume and Restart (only the failing
//! elements are gone), and `recover`.

use proptest::prelude::*;
use std::sync::OnceLock;
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::{Promise, SinkLogic, StageCx, promise};
use weir_operators::prelude::*;

/// Collects every element and how the stream ended (a failure keeps what came before it).
struct Collect<T> {
    buf: Vec<T>,
    done: Promise<(Vec<T>, Option<String>)>,
}

impl<T: Send + 'static> SinkLogic<T> for Collect<T> {
    fn on_batch(&mut self, input: &mut Vec<T>, _: &mut StageCx<'_>) -> Result<(), StageError> {
        self.buf.append(input);
        Ok(())
    }
    fn on_finish(&mut self, _: &mut StageCx<'_>) -> Result<(), StageError> {
        self.done
            .complete(Ok((std::mem::take(&mut self.buf), None)));
        Ok(())
    }
    fn on_error(&mut self, error: &StageError) {
        let seen = std::mem::take(&mut self.buf);
        self.done.complete(Ok((seen, Some(error.to_string()))));
    }
}

fn collect<T: Send + 'static>() -> Sink<T, SinkFuture<(Vec<T>, Option<String>)>> {
    Sink::from_logic("collect", |_| {
        let (done, fut) = promise();
        Ok((
            Collect {
                buf: Vec::new(),
                done,
            },
            fut,
        ))
    })
}

/// One linear operator over `i64` (windowed ones are encoded back to a single `i64`).
#[derive(Debug, Clone)]
enum Op {
    Map(i64),
    Filter(i64),
    FilterMap(i64),
    FlatMap(usize),
    Scan,
    Fold,
    Reduce,
    Take(usize),
    TakeWhile(i64),
    TakeWhileInclusive(i64),
    Drop(usize),
    DropWhile(i64),
    Grouped(usize),
    Sliding(usize, usize),
    Intersperse,
    IntersperseAround,
    ZipWithIndex,
    Inspect,
    /// `try_map` failing (Stop) on the first element `>= t`.
    FailAt(i64),
    /// `recover` emitting this value when upstream fails.
    Recover(i64),
    /// `map` panicking on elements divisible by `m`, supervised by Resume or Restart (`true`):
    /// those elements are dropped, every other one is emitted.
    PanicEvery(i64, bool),
    /// `try_map` returning an error on elements divisible by `m`, under Resume or Restart.
    ErrEvery(i64, bool),
    /// `scan` (running sum) panicking on elements divisible by `m`: Resume keeps the sum,
    /// Restart emits the seed again and sums from zero.
    ScanPanicEvery(i64, bool),
    /// `filter` (keeping odd elements) whose predicate panics on multiples of `m`.
    FilterPanicEvery(i64, bool),
    /// `fold` panicking on multiples of `m`: Resume keeps the accumulator, Restart starts over
    /// from the seed.
    FoldPanicEvery(i64, bool),
}

fn encode(g: &[i64]) -> i64 {
    g.iter()
        .fold(g.len() as i64, |a, x| a.wrapping_mul(31).wrapping_add(*x))
}

fn sliding_model(v: &[i64], n: usize, step: usize) -> Vec<i64> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < v.len() {
        if start + n <= v.len() {
            out.push(encode(&v[start..start + n]));
        } else if start == 0 || v.len() > start - step + n {
            out.push(encode(&v[start..]));
        }
        start += step;
    }
    out
}

fn intersperse_model(v: &[i64]) -> Vec<i64> {
    let mut out = Vec::new();
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(-1);
        }
        out.push(*x);
    }
    out
}

impl Op {
    /// The model over what reaches the operator and whether upstream failed after it: what the
    /// operator emits, and whether the stream still fails. One element at a time, a stage that
    /// fails has emitted everything before the failing element, stages that emit on completion
    /// (fold, the last group or window, the end marker) emit nothing, a `take` that is full
    /// completes before the failure reaches it, and `recover` turns the failure into one last
    /// element.
    fn model(&self, v: Vec<i64>, failed: bool) -> (Vec<i64>, bool) {
        let it = v.iter().copied();
        let first_at_least = |t: i64| v.iter().position(|x| *x >= t);
        match *self {
            Op::Map(k) => (
                it.map(|x| x.wrapping_mul(k).wrapping_add(1)).collect(),
                failed,
            ),
            Op::Filter(m) => (it.filter(|x| x.rem_euclid(m) != 0).collect(), failed),
            Op::FilterMap(m) => (
                it.filter_map(|x| (x.rem_euclid(m) == 0).then_some(x / m))
                    .collect(),
                failed,
            ),
            Op::FlatMap(k) => (it.flat_map(|x| std::iter::repeat_n(x, k)).collect(), failed),
            // Emits its zero with the first batch it sees, on completion, or ahead of a failure.
            Op::Scan => (
                std::iter::once(0)
                    .chain(it.scan(0i64, |a, x| {
                        *a = a.wrapping_add(x);
                        Some(*a)
                    }))
                    .collect(),
                failed,
            ),
            Op::Fold | Op::Reduce if failed => (Vec::new(), true),
            Op::Fold => (
                vec![it.fold(7i64, |a, x| a.wrapping_mul(3).wrapping_add(x))],
                false,
            ),
            Op::Reduce => match it.reduce(|a, b| a.wrapping_sub(b)) {
                Some(r) => (vec![r], false),
                None => (Vec::new(), true),
            },
            Op::Take(n) if v.len() >= n => (v[..n].to_vec(), false),
            Op::Take(_) => (v, failed),
            Op::TakeWhile(t) => match first_at_least(t) {
                Some(p) => (v[..p].to_vec(), false),
                None => (v, failed),
            },
            Op::TakeWhileInclusive(t) => match first_at_least(t) {
                Some(p) => (v[..=p].to_vec(), false),
                None => (v, failed),
            },
            Op::Drop(n) => (it.skip(n).collect(), failed),
            Op::DropWhile(t) => (it.skip_while(|x| *x < t).collect(), failed),
            Op::Grouped(n) if failed => (v.chunks_exact(n).map(encode).collect(), true),
            Op::Grouped(n) => (v.chunks(n).map(encode).collect(), false),
            Op::Sliding(n, s) if failed => (
                (0..v.len())
                    .step_by(s)
                    .take_while(|st| st + n <= v.len())
                    .map(|st| encode(&v[st..st + n]))
                    .collect(),
                true,
            ),
            Op::Sliding(n, s) => (sliding_model(&v, n, s), false),
            Op::Intersperse => (intersperse_model(&v), failed),
            // The start marker comes with the first batch (or on completion), the end marker
            // only on completion.
            Op::IntersperseAround if failed && v.is_empty() => (v, true),
            Op::IntersperseAround => {
                let mut out = vec![-2];
                out.extend(intersperse_model(&v));
                if !failed {
                    out.push(-3);
                }
                (out, failed)
            }
            Op::ZipWithIndex => (
                it.enumerate()
                    .map(|(i, x)| x.wrapping_mul(1000).wrapping_add(i as i64))
                    .collect(),
                failed,
            ),
            Op::Inspect => (v, failed),
            Op::FailAt(t) => match first_at_least(t) {
                Some(p) => (v[..p].to_vec(), true),
                None => (v, failed),
            },
            Op::Recover(r) if failed => {
                let mut out = v;
                out.push(r);
                (out, false)
            }
            Op::Recover(_) => (v, false),
            Op::PanicEvery(m, _) | Op::ErrEvery(m, _) => {
                (it.filter(|x| x.rem_euclid(m) != 0).collect(), failed)
            }
            Op::FilterPanicEvery(m, _) => (
                it.filter(|x| x.rem_euclid(m) != 0 && x.rem_euclid(2) == 1)
                    .collect(),
                failed,
            ),
            Op::FoldPanicEvery(_, _) if failed => (Vec::new(), true),
            Op::FoldPanicEvery(m, restart) => {
                let acc = it.fold(7i64, |a, x| {
                    if x.rem_euclid(m) != 0 {
                        a.wrapping_mul(3).wrapping_add(x)
                    } else if restart {
                        7
                    } else {
                        a
                    }
                });
                (vec![acc], false)
            }
            Op::ScanPanicEvery(m, restart) => {
                let mut out = vec![0];
                let mut acc = 0i64;
                for x in it {
                    if x.rem_euclid(m) != 0 {
                        acc = acc.wrapping_add(x);
                        out.push(acc);
                    } else if restart {
                        acc = 0;
                        out.push(0);
                    }
                }
                // A restart emits the fresh seed at once (as Akka's), also when it is the last
                // element before a failure: the new instance emits it ahead of the failure.
                (out, failed)
            }
        }
    }

    /// The same operator on a stream.
    fn apply(&self, s: Source<i64>) -> Source<i64> {
        match *self {
            Op::Map(k) => s.map(move |x| x.wrapping_mul(k).wrapping_add(1)),
            Op::Filter(m) => s.filter(move |x| x.rem_euclid(m) != 0),
            Op::FilterMap(m) => s.filter_map(move |x| (x.rem_euclid(m) == 0).then_some(x / m)),
            Op::FlatMap(k) => s.flat_map(move |x| std::iter::repeat_n(x, k)),
            Op::Scan => s.scan(0i64, |a, x| a.wrapping_add(x)),
            Op::Fold => s.fold(7i64, |a, x| a.wrapping_mul(3).wrapping_add(x)),
            Op::Reduce => s.reduce(|a, b| a.wrapping_sub(b)),
            Op::Take(n) => s.take(n),
            Op::TakeWhile(t) => s.take_while(move |x| *x < t),
            Op::TakeWhileInclusive(t) => s.take_while_inclusive(move |x| *x < t),
            Op::Drop(n) => s.drop(n),
            Op::DropWhile(t) => s.drop_while(move |x| *x < t),
            Op::Grouped(n) => s.grouped(n).map(|g| encode(&g)),
            Op::Sliding(n, st) => s.sliding(n, st).map(|g| encode(&g)),
            Op::Intersperse => s.intersperse(-1),
            Op::IntersperseAround => s.intersperse_around(-2, -1, -3),
            Op::ZipWithIndex => s
                .zip_with_index()
                .map(|(x, i)| x.wrapping_mul(1000).wrapping_add(i as i64)),
            Op::Inspect => s.inspect(|_| {}),
            Op::FailAt(t) => s.try_map(move |x| {
                if *x >= t {
                    Err(StageError::user(format!("fail at {x}")))
                } else {
                    Ok(*x)
                }
            }),
            Op::Recover(r) => s.recover(move |_| Some(r)),
            Op::PanicEvery(m, restart) => s
                .map(move |x| {
                    assert!(x.rem_euclid(m) != 0, "multiple of {m}");
                    x
                })
                .with_supervision(sup(restart)),
            Op::ErrEvery(m, restart) => s
                .try_map(move |x| {
                    if x.rem_euclid(m) == 0 {
                        Err(StageError::user(format!("multiple of {m}")))
                    } else {
                        Ok(*x)
                    }
                })
                .with_supervision(sup(restart)),
            Op::FilterPanicEvery(m, restart) => s
                .filter(move |x| {
                    assert!(x.rem_euclid(m) != 0, "multiple of {m}");
                    x.rem_euclid(2) == 1
                })
                .with_supervision(sup(restart)),
            Op::FoldPanicEvery(m, restart) => s
                .fold(7i64, move |a, x| {
                    assert!(x.rem_euclid(m) != 0, "multiple of {m}");
                    a.wrapping_mul(3).wrapping_add(x)
                })
                .with_supervision(sup(restart)),
            Op::ScanPanicEvery(m, restart) => s
                .scan(0i64, move |a, x| {
                    assert!(x.rem_euclid(m) != 0, "multiple of {m}");
                    a.wrapping_add(x)
                })
                .with_supervision(sup(restart)),
        }
    }
}

fn sup(restart: bool) -> weir_graph::Supervision {
    if restart {
        weir_graph::Supervision::restart()
    } else {
        weir_graph::Supervision::resume()
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (-3i64..4).prop_map(Op::Map),
        (2i64..5).prop_map(Op::Filter),
        (1i64..4).prop_map(Op::FilterMap),
        (0usize..3).prop_map(Op::FlatMap),
        Just(Op::Scan),
        Just(Op::Fold),
        Just(Op::Reduce),
        (1usize..40).prop_map(Op::Take),
        (-50i64..100).prop_map(Op::TakeWhile),
        (-50i64..100).prop_map(Op::TakeWhileInclusive),
        (0usize..40).prop_map(Op::Drop),
        (-50i64..100).prop_map(Op::DropWhile),
        (1usize..6).prop_map(Op::Grouped),
        (1usize..5, 1usize..5).prop_map(|(n, s)| Op::Sliding(n, s)),
        Just(Op::Intersperse),
        Just(Op::IntersperseAround),
        Just(Op::ZipWithIndex),
        Just(Op::Inspect),
        (-50i64..130).prop_map(Op::FailAt),
        (-9i64..0).prop_map(Op::Recover),
        (2i64..6, any::<bool>()).prop_map(|(m, r)| Op::PanicEvery(m, r)),
        (2i64..6, any::<bool>()).prop_map(|(m, r)| Op::ErrEvery(m, r)),
        (2i64..6, any::<bool>()).prop_map(|(m, r)| Op::ScanPanicEvery(m, r)),
        (2i64..6, any::<bool>()).prop_map(|(m, r)| Op::FilterPanicEvery(m, r)),
        (2i64..6, any::<bool>()).prop_map(|(m, r)| Op::FoldPanicEvery(m, r)),
    ]
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
    })
}

/// How a run ended: its elements, the elements before a failure, or no end in time.
#[derive(Debug, PartialEq)]
enum Outcome {
    Done(Vec<i64>),
    Failed(Vec<i64>),
    NotStarted(String),
    Hung,
}

impl Outcome {
    fn of_model((v, failed): (Vec<i64>, bool)) -> Self {
        if failed {
            Outcome::Failed(v)
        } else {
            Outcome::Done(v)
        }
    }
}

/// Runs the pipeline on the shared runtime.
fn run_pipeline(input: &[i64], ops: &[(Op, bool)], head_boundary: bool, bs: usize) -> Outcome {
    let mut s = Source::from_iter(input.to_vec());
    if head_boundary {
        s = s.async_boundary();
    }
    for (op, boundary) in ops {
        s = op.apply(s);
        if *boundary {
            s = s.async_boundary();
        }
    }
    let m = Materializer::new().with_batch_size(bs);
    runtime().block_on(async move {
        let fut = match s.run_with_on(collect(), &m) {
            Ok(f) => f,
            Err(e) => return Outcome::NotStarted(e.to_string()),
        };
        match tokio::time::timeout(Duration::from_secs(20), fut).await {
            Ok(Ok((v, None))) => Outcome::Done(v),
            Ok(Ok((v, Some(_)))) => Outcome::Failed(v),
            Ok(Err(e)) => Outcome::NotStarted(e.to_string()),
            Err(_) => Outcome::Hung,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn linear_ops_match_the_model(
        input in prop::collection::vec(-60i64..120, 0..120),
        ops in prop::collection::vec((op(), any::<bool>()), 1..6),
        head_boundary in any::<bool>(),
        bs in 1usize..40,
    ) {
        let model = ops
            .iter()
            .fold((input.clone(), false), |(v, failed), (op, _)| op.model(v, failed));
        let got = run_pipeline(&input, &ops, head_boundary, bs);
        prop_assert_eq!(got, Outcome::of_model(model));
    }

    #[test]
    fn batch_edges_do_not_matter_for_one_op(
        input in prop::collection::vec(-60i64..120, 0..80),
        op in op(),
        bs in 1usize..20,
        boundary in any::<bool>(),
    ) {
        let model = op.model(input.clone(), false);
        let got = run_pipeline(&input, &[(op, boundary)], boundary, bs);
        prop_assert_eq!(got, Outcome::of_model(model));
    }
}

#[test]
fn scan_zero_ahead_of_a_failure_then_take_while_completes() {
    // The scan's zero (due ahead of the upstream failure) ends take_while: the run completes.
    let ops = [
        (Op::FailAt(0), false),
        (Op::ScanPanicEvery(2, false), false),
        (Op::TakeWhile(0), false),
    ];
    for _ in 0..200 {
        assert_eq!(run_pipeline(&[0], &ops, false, 1), Outcome::Done(vec![]));
    }
}
