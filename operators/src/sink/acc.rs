//! Synchronous accumulating sinks: `collect`, `fold`, `for_each`, `ignore`, `head`, `last`...
//! All share [`AccLogic`]: a state updated per batch and turned into the promised result.

use weir_graph::{Promise, Sink, SinkFuture, SinkLogic, StageCx, StageError, promise};

/// The error of `Sink::head` (and `last`) on a stream that completed without elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream completed without elements")]
pub struct EmptyStream;

/// A state updated by `batch`, finished into the promise by `finish` on completion (or as soon
/// as `done` says so, which also cancels upstream).
struct AccLogic<S, B, F, Out> {
    state: Option<S>,
    batch: B,
    finish: F,
    done: fn(&S) -> bool,
    /// Uses at most one element (`head`): its island asks upstream for one.
    one: bool,
    promise: Promise<Out>,
}

impl<T, S, B, F, Out> SinkLogic<T> for AccLogic<S, B, F, Out>
where
    T: Send + 'static,
    S: Send + 'static,
    B: FnMut(&mut S, &mut Vec<T>) + Send + 'static,
    F: FnMut(S) -> Result<Out, StageError> + Send + 'static,
    Out: Send + 'static,
{
    fn on_batch(&mut self, input: &mut Vec<T>, scx: &mut StageCx<'_>) -> Result<(), StageError> {
        if let Some(s) = &mut self.state {
            (self.batch)(s, input);
            if (self.done)(s) {
                self.complete(&scx.info().path);
            }
        }
        input.clear();
        Ok(())
    }
    fn on_finish(&mut self, scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.complete(&scx.info().path);
        Ok(())
    }
    fn on_error(&mut self, error: &StageError) {
        self.state = None;
        self.promise.complete(Err(error.clone()));
    }
    fn is_done(&self) -> bool {
        self.state.is_none()
    }
    fn wants(&self) -> usize {
        match (&self.state, self.one) {
            (None, _) => 0,
            (Some(_), true) => 1,
            (Some(_), false) => usize::MAX,
        }
    }
}

impl<S, B, F: FnMut(S) -> Result<Out, StageError>, Out> AccLogic<S, B, F, Out> {
    /// Completes the promise with the finished state; a failure names the stage at `path`.
    fn complete(&mut self, path: &str) {
        if let Some(s) = self.state.take() {
            self.promise
                .complete((self.finish)(s).map_err(|e| e.with_stage(path)));
        }
    }
}

fn never<S>(_: &S) -> bool {
    false
}

/// Builds an accumulating sink; `init`, `batch` and `finish` are cloned per materialization.
fn acc_sink<T, S, B, F, Out>(
    name: &str,
    init: impl Fn() -> S + Send + Sync + 'static,
    batch: B,
    finish: F,
    done: fn(&S) -> bool,
) -> Sink<T, SinkFuture<Out>>
where
    T: Send + 'static,
    S: Send + 'static,
    B: FnMut(&mut S, &mut Vec<T>) + Clone + Send + Sync + 'static,
    F: FnMut(S) -> Result<Out, StageError> + Clone + Send + Sync + 'static,
    Out: Send + 'static,
{
    acc_sink_of(name, init, batch, finish, done, false)
}

/// [`acc_sink`]; `one`: the sink uses at most one element, so it asks upstream for one.
fn acc_sink_of<T, S, B, F, Out>(
    name: &str,
    init: impl Fn() -> S + Send + Sync + 'static,
    batch: B,
    finish: F,
    done: fn(&S) -> bool,
    one: bool,
) -> Sink<T, SinkFuture<Out>>
where
    T: Send + 'static,
    S: Send + 'static,
    B: FnMut(&mut S, &mut Vec<T>) + Clone + Send + Sync + 'static,
    F: FnMut(S) -> Result<Out, StageError> + Clone + Send + Sync + 'static,
    Out: Send + 'static,
{
    Sink::from_logic(name, move |_| {
        let (promise, future) = promise();
        let logic = AccLogic {
            state: Some(init()),
            batch: batch.clone(),
            finish: finish.clone(),
            done,
            one,
            promise,
        };
        Ok((logic, future))
    })
}

pub(crate) fn collect<T: Send + 'static>() -> Sink<T, SinkFuture<Vec<T>>> {
    collect_then(Ok)
}

pub(crate) fn collect_then<T, O, F>(then: F) -> Sink<T, SinkFuture<O>>
where
    T: Send + 'static,
    O: Send + 'static,
    F: FnMut(Vec<T>) -> Result<O, StageError> + Clone + Send + Sync + 'static,
{
    acc_sink(
        "collect",
        Vec::new,
        |s: &mut Vec<T>, v| s.append(v),
        then,
        never,
    )
}

pub(crate) fn fold<T, A, F>(init: A, f: F) -> Sink<T, SinkFuture<A>>
where
    T: Send + 'static,
    A: Clone + Send + Sync + 'static,
    F: FnMut(A, T) -> A + Clone + Send + Sync + 'static,
{
    Sink::from_logic("fold", move |_| {
        let (promise, future) = promise();
        let logic = FoldSink {
            acc: Some(init.clone()),
            saved: None,
            f: f.clone(),
            promise,
            finished: false,
        };
        Ok((logic, future))
    })
}

/// `Sink::fold`: like the `fold` flow, under supervision it keeps the accumulator from before
/// each call (`f` takes it by value), so Resume goes on from there after a panic.
struct FoldSink<A, F> {
    acc: Option<A>,
    saved: Option<A>,
    f: F,
    promise: Promise<A>,
    finished: bool,
}

impl<T, A, F> SinkLogic<T> for FoldSink<A, F>
where
    T: Send + 'static,
    A: Clone + Send + 'static,
    F: FnMut(A, T) -> A + Send + 'static,
{
    fn on_batch(&mut self, input: &mut Vec<T>, scx: &mut StageCx<'_>) -> Result<(), StageError> {
        let Some(mut acc) = self.acc.take().or_else(|| self.saved.take()) else {
            input.clear();
            return Ok(());
        };
        if scx.supervised() {
            let (f, saved) = (&mut self.f, &mut self.saved);
            acc = weir_graph::consume(input, |it| {
                it.fold(acc, |a, x| {
                    *saved = Some(a.clone());
                    f(a, x)
                })
            });
            self.saved = None;
        } else {
            acc = input.drain(..).fold(acc, &mut self.f);
        }
        self.acc = Some(acc);
        Ok(())
    }
    fn on_finish(&mut self, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        let acc = self.acc.take().or_else(|| self.saved.take());
        self.finished = true;
        self.promise
            .complete(acc.ok_or_else(|| StageError::internal("fold lost its state")));
        Ok(())
    }
    fn on_error(&mut self, error: &StageError) {
        self.acc = None;
        self.finished = true;
        self.promise.complete(Err(error.clone()));
    }
    fn is_done(&self) -> bool {
        self.finished
    }
}

pub(crate) fn for_each<T, F>(f: F) -> Sink<T, SinkFuture<()>>
where
    T: Send + 'static,
    F: FnMut(T) + Clone + Send + Sync + 'static,
{
    let mut f = f;
    let batch = move |_: &mut (), v: &mut Vec<T>| weir_graph::consume(v, |it| it.for_each(&mut f));
    acc_sink("for_each", || (), batch, Ok, never)
}

pub(crate) fn ignore<T: Send + 'static>() -> Sink<T, SinkFuture<()>> {
    acc_sink(
        "ignore",
        || (),
        |_: &mut (), v: &mut Vec<T>| v.clear(),
        Ok,
        never,
    )
}

fn first<T>(s: &mut Option<T>, v: &mut Vec<T>) {
    if s.is_none() && !v.is_empty() {
        *s = Some(v.swap_remove(0));
    }
}

fn latest<T>(s: &mut Option<T>, v: &mut Vec<T>) {
    if let Some(x) = v.pop() {
        *s = Some(x);
    }
}

fn required<T>(s: Option<T>) -> Result<T, StageError> {
    s.ok_or_else(|| StageError::from_error(EmptyStream))
}

pub(crate) fn head<T: Send + 'static>() -> Sink<T, SinkFuture<T>> {
    head_then(Ok)
}

pub(crate) fn head_then<T, O, F>(mut then: F) -> Sink<T, SinkFuture<O>>
where
    T: Send + 'static,
    O: Send + 'static,
    F: FnMut(T) -> Result<O, StageError> + Clone + Send + Sync + 'static,
{
    let finish = move |s| required(s).and_then(&mut then);
    acc_sink_of("head", || None, first, finish, Option::is_some, true)
}

pub(crate) fn head_option<T: Send + 'static>() -> Sink<T, SinkFuture<Option<T>>> {
    head_option_then(Ok)
}

pub(crate) fn head_option_then<T, O, F>(then: F) -> Sink<T, SinkFuture<O>>
where
    T: Send + 'static,
    O: Send + 'static,
    F: FnMut(Option<T>) -> Result<O, StageError> + Clone + Send + Sync + 'static,
{
    acc_sink_of("head_option", || None, first, then, Option::is_some, true)
}

pub(crate) fn last<T: Send + 'static>() -> Sink<T, SinkFuture<T>> {
    last_then(Ok)
}

pub(crate) fn last_then<T, O, F>(mut then: F) -> Sink<T, SinkFuture<O>>
where
    T: Send + 'static,
    O: Send + 'static,
    F: FnMut(T) -> Result<O, StageError> + Clone + Send + Sync + 'static,
{
    let finish = move |s| required(s).and_then(&mut then);
    acc_sink("last", || None, latest, finish, never)
}

pub(crate) fn last_option<T: Send + 'static>() -> Sink<T, SinkFuture<Option<T>>> {
    last_option_then(Ok)
}

pub(crate) fn last_option_then<T, O, F>(then: F) -> Sink<T, SinkFuture<O>>
where
    T: Send + 'static,
    O: Send + 'static,
    F: FnMut(Option<T>) -> Result<O, StageError> + Clone + Send + Sync + 'static,
{
    acc_sink("last_option", || None, latest, then, never)
}

/// `Sink::fold_batches`: `f` folds whole batches into the state, reporting failed elements
/// through the stage context (supervision); an error it returns fails the sink.
struct BatchFold<A, F> {
    acc: Option<A>,
    f: F,
    promise: Promise<A>,
}

impl<T, A, F> SinkLogic<T> for BatchFold<A, F>
where
    T: Send + 'static,
    A: Send + 'static,
    F: FnMut(&mut A, &mut Vec<T>, &mut StageCx<'_>) -> Result<(), StageError> + Send + 'static,
{
    fn on_batch(&mut self, input: &mut Vec<T>, scx: &mut StageCx<'_>) -> Result<(), StageError> {
        let r = match &mut self.acc {
            Some(acc) => (self.f)(acc, input, scx),
            None => Ok(()),
        };
        input.clear();
        r
    }
    fn on_finish(&mut self, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        if let Some(acc) = self.acc.take() {
            self.promise.complete(Ok(acc));
        }
        Ok(())
    }
    fn on_error(&mut self, error: &StageError) {
        self.acc = None;
        self.promise.complete(Err(error.clone()));
    }
    fn is_done(&self) -> bool {
        self.acc.is_none()
    }
}

pub(crate) fn fold_batches<T, A, I, F>(init: I, f: F) -> Sink<T, SinkFuture<A>>
where
    T: Send + 'static,
    A: Send + 'static,
    I: Fn() -> A + Send + Sync + 'static,
    F: FnMut(&mut A, &mut Vec<T>, &mut StageCx<'_>) -> Result<(), StageError>
        + Clone
        + Send
        + Sync
        + 'static,
{
    Sink::from_logic("fold", move |_| {
        let (promise, future) = promise();
        let logic = BatchFold {
            acc: Some(init()),
            f: f.clone(),
            promise,
        };
        Ok((logic, future))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_support::sink;
    use std::sync::{Arc, Mutex};

    #[test]
    fn collect_fold_for_each_ignore() {
        let (mut h, mut fut) = sink(&collect::<u32>());
        assert!(h.batch(vec![1, 2]).unwrap().is_empty());
        h.batch(vec![3]).unwrap();
        assert!(fut.try_get().is_none());
        h.finish().unwrap();
        assert_eq!(fut.try_get().unwrap().unwrap(), vec![1, 2, 3]);

        let s = fold(10u64, |a, x: u64| a + x);
        let (mut h, mut fut) = sink(&s);
        h.batch(vec![1, 2, 3]).unwrap();
        h.finish().unwrap();
        assert_eq!(fut.try_get().unwrap().unwrap(), 16);
        let (mut h2, mut fut2) = sink(&s);
        h2.finish().unwrap();
        assert_eq!(fut2.try_get().unwrap().unwrap(), 10);

        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = Arc::clone(&seen);
        let (mut h, mut fut) = sink(&for_each(move |x: u8| s2.lock().unwrap().push(x)));
        h.batch(vec![4, 5]).unwrap();
        h.finish().unwrap();
        assert!(fut.try_get().unwrap().is_ok());
        assert_eq!(*seen.lock().unwrap(), vec![4, 5]);

        let (mut h, mut fut) = sink(&ignore::<u8>());
        assert!(h.batch(vec![1]).unwrap().is_empty());
        h.finish().unwrap();
        assert!(fut.try_get().unwrap().is_ok());
    }

    #[test]
    fn errors_complete_the_promise() {
        let (mut h, mut fut) = sink(&collect::<u32>());
        h.batch(vec![1]).unwrap();
        h.error(&StageError::user("up"));
        assert_eq!(fut.try_get().unwrap().unwrap_err().message(), "up");
        assert!(h.is_done());
    }

    #[test]
    fn head_completes_early_and_is_done() {
        let (mut h, mut fut) = sink(&head::<u32>());
        assert!(!h.is_done());
        h.batch(vec![]).unwrap();
        assert!(!h.is_done());
        h.batch(vec![7, 8]).unwrap();
        assert!(h.is_done());
        assert_eq!(fut.try_get().unwrap().unwrap(), 7);
        h.finish().unwrap();

        let (mut h, mut fut) = sink(&head::<u32>());
        h.finish().unwrap();
        let e = fut.try_get().unwrap().unwrap_err();
        assert!(e.downcast_cause::<EmptyStream>().is_some());

        let (mut h, mut fut) = sink(&head_option::<u32>());
        h.finish().unwrap();
        assert_eq!(fut.try_get().unwrap().unwrap(), None);
    }

    #[test]
    fn last_and_last_option() {
        let (mut h, mut fut) = sink(&last::<u32>());
        h.batch(vec![1, 2]).unwrap();
        h.batch(vec![]).unwrap();
        h.batch(vec![3]).unwrap();
        assert!(!h.is_done());
        h.finish().unwrap();
        assert_eq!(fut.try_get().unwrap().unwrap(), 3);
        let (mut h, mut fut) = sink(&last::<u32>());
        h.finish().unwrap();
        assert!(fut.try_get().unwrap().is_err());
        let (mut h, mut fut) = sink(&last_option::<u32>());
        h.batch(vec![9]).unwrap();
        h.finish().unwrap();
        assert_eq!(fut.try_get().unwrap().unwrap(), Some(9));
    }
}

#[cfg(test)]
mod then_tests {
    use super::*;
    use crate::source::test_support::sink;

    #[test]
    fn results_go_through_then() {
        let (mut h, mut fut) = sink(&collect_then(|v: Vec<u32>| Ok(v.len())));
        h.batch(vec![1, 2]).unwrap();
        h.batch(vec![3]).unwrap();
        h.finish().unwrap();
        assert_eq!(fut.try_get().unwrap().unwrap(), 3);

        let (mut h, mut fut) = sink(&head_then(|x: u32| Ok(x * 10)));
        h.batch(vec![7, 8]).unwrap();
        assert!(h.is_done());
        assert_eq!(fut.try_get().unwrap().unwrap(), 70);
        let (mut h, mut fut) = sink(&head_then(|x: u32| Ok(x * 10)));
        h.finish().unwrap();
        let e = fut.try_get().unwrap().unwrap_err();
        assert!(e.downcast_cause::<EmptyStream>().is_some());

        let (mut h, mut fut) = sink(&head_option_then(|x: Option<u32>| Ok(x.is_none())));
        h.finish().unwrap();
        assert!(fut.try_get().unwrap().unwrap());

        let (mut h, mut fut) = sink(&last_then(|x: u32| Ok(x + 1)));
        h.batch(vec![1, 2]).unwrap();
        h.batch(vec![]).unwrap();
        assert!(!h.is_done());
        h.finish().unwrap();
        assert_eq!(fut.try_get().unwrap().unwrap(), 3);
        let (mut h, mut fut) = sink(&last_option_then(|x: Option<u32>| Ok(x)));
        h.finish().unwrap();
        assert_eq!(fut.try_get().unwrap().unwrap(), None);

        let (mut h, mut fut) = sink(&collect_then(|_v: Vec<u32>| -> Result<u8, _> {
            Err(StageError::user("no list"))
        }));
        h.batch(vec![1]).unwrap();
        h.finish().unwrap();
        assert_eq!(fut.try_get().unwrap().unwrap_err().message(), "no list");
    }

    #[test]
    fn fold_batches_folds_whole_batches_and_fails_on_error() {
        let s = fold_batches(
            || 0u64,
            |acc: &mut u64, b: &mut Vec<u64>, _cx: &mut StageCx<'_>| {
                if b.contains(&0) {
                    return Err(StageError::user("zero"));
                }
                *acc += b.drain(..).sum::<u64>();
                Ok(())
            },
        );
        let (mut h, mut fut) = sink(&s);
        assert!(h.batch(vec![1, 2]).unwrap().is_empty());
        h.batch(vec![3]).unwrap();
        assert!(fut.try_get().is_none());
        h.finish().unwrap();
        assert_eq!(fut.try_get().unwrap().unwrap(), 6);
        assert!(h.is_done());

        let (mut h, mut fut) = sink(&s);
        let e = h.batch(vec![4, 0]).err();
        assert_eq!(e.map(|e| e.message().to_owned()).as_deref(), Some("zero"));
        h.error(&StageError::user("zero"));
        assert_eq!(fut.try_get().unwrap().unwrap_err().message(), "zero");

        let (mut h, mut fut) = sink(&s);
        h.finish().unwrap();
        assert_eq!(fut.try_get().unwrap().unwrap(), 0);
    }
}
