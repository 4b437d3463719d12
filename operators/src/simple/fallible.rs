//! Fallible forms of the stateful simple operators: `try_scan`, `try_fold`, `try_reduce`,
//! `try_take_while`, `try_drop_while`, `try_inspect` (`try_recover` is with `recover`).
//!
//! The user function returns a `Result`; an `Err` on an element goes through the stage's
//! supervision ([`StageCx::element_failed`]), carrying the element to the dead letters: Resume
//! skips the element (keeping the state built so far), Restart skips it and the engine recreates
//! the logic (fresh state) for the rest of the input, Stop fails the stage. An error that already
//! is a [`StageError`] is kept as it is (its kind, cause and element rendering), any other error
//! becomes a user error with it as the cause. A cancellation is never supervised.

use super::pass;
use std::error::Error;
use std::marker::PhantomData;
use weir_graph::{ErrorKind, Flow, FlowLogic, StageCx, StageError, consume_ref};

/// A user function's error as a stage error: a [`StageError`] unchanged, anything else a
/// [`ErrorKind::User`] error caused by it.
pub(crate) fn user_failure<E: Into<Box<dyn Error + Send + Sync>>>(e: E) -> StageError {
    match e.into().downcast::<StageError>() {
        Ok(se) => *se,
        Err(other) => StageError::from_boxed(ErrorKind::User, other),
    }
}

/// Hands the element `x` whose function failed with `e` to the stage's supervision.
fn failed<T: Send + 'static, E: Into<Box<dyn Error + Send + Sync>>>(
    scx: &mut StageCx<'_>,
    e: E,
    x: T,
) -> Result<(), StageError> {
    scx.element_failed(user_failure(e), Some(Box::new(x)), None)
}

// ---------------------------------------------------------------------------------------------
// try_scan

struct TryScanLogic<S, F, E> {
    acc: S,
    f: F,
    started: bool,
    _e: PhantomData<fn() -> E>,
}

impl<S: Clone, F, E> TryScanLogic<S, F, E> {
    fn begin(&mut self, out: &mut Vec<S>) {
        if !self.started {
            self.started = true;
            out.push(self.acc.clone());
        }
    }
}

impl<I, S, F, E> FlowLogic<I, S> for TryScanLogic<S, F, E>
where
    I: Send + 'static,
    S: Clone + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&S, &I) -> Result<S, E> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<I>,
        out: &mut Vec<S>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        self.begin(out);
        out.reserve(input.len());
        let (acc, f) = (&mut self.acc, &mut self.f);
        consume_ref(input, |it| {
            while let Some(x) = it.as_slice().first() {
                let r = f(acc, x);
                let Some(x) = it.next() else { break };
                match r {
                    Ok(s) => {
                        out.push(s.clone());
                        *acc = s;
                    }
                    Err(e) => failed(scx, e, x)?,
                }
            }
            Ok(())
        })
    }

    fn on_finish(&mut self, out: &mut Vec<S>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.begin(out);
        Ok(())
    }

    fn on_upstream_error(
        &mut self,
        error: StageError,
        out: &mut Vec<S>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        // `zero` is due on the first demand: it goes ahead of the failure.
        self.begin(out);
        Err(error)
    }
}

/// Running aggregate with a fallible function: emits `zero`, then `f(acc, x)` after every
/// element; an element whose `f` fails is supervised (Resume keeps the aggregate, Restart starts
/// again from `zero`, emitting it again).
/// Emits when: first demand (`zero`), then each element `f` succeeded on.
/// Backpressures when: downstream backpressures.
/// Completes when: upstream completes (an empty stream still emits `zero`).
/// Cancels when: downstream cancels.
/// Fails when: `f` fails under Stop (the default), or upstream fails (after `zero`).
pub fn try_scan<I, S, E, F>(zero: S, f: F) -> Flow<I, S>
where
    I: Send + 'static,
    S: Clone + Send + Sync + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&S, &I) -> Result<S, E> + Clone + Send + Sync + 'static,
{
    Flow::from_logic("scan", move |_| {
        let logic = TryScanLogic {
            acc: zero.clone(),
            f: f.clone(),
            started: false,
            _e: PhantomData,
        };
        Ok((logic, ()))
    })
}

// ---------------------------------------------------------------------------------------------
// try_fold

struct TryFoldLogic<S, F, E> {
    acc: S,
    f: F,
    _e: PhantomData<fn() -> E>,
}

impl<I, S, F, E> FlowLogic<I, S> for TryFoldLogic<S, F, E>
where
    I: Send + 'static,
    S: Clone + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&S, &I) -> Result<S, E> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<I>,
        _out: &mut Vec<S>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let (acc, f) = (&mut self.acc, &mut self.f);
        consume_ref(input, |it| {
            while let Some(x) = it.as_slice().first() {
                let r = f(acc, x);
                let Some(x) = it.next() else { break };
                match r {
                    Ok(a) => *acc = a,
                    Err(e) => failed(scx, e, x)?,
                }
            }
            Ok(())
        })
    }

    fn on_finish(&mut self, out: &mut Vec<S>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        out.push(self.acc.clone());
        Ok(())
    }
}

/// Final aggregate with a fallible function: folds every element into `zero` with `f(&acc, &x)`
/// and emits the result once; an element whose `f` fails is supervised (Resume keeps the
/// aggregate before it, Restart starts again from `zero`).
/// Emits when: upstream completes.
/// Backpressures when: never before completion (it consumes everything).
/// Completes when: upstream completes and the result is emitted.
/// Cancels when: downstream cancels.
/// Fails when: `f` fails under Stop (the default), or upstream fails.
pub fn try_fold<I, S, E, F>(zero: S, f: F) -> Flow<I, S>
where
    I: Send + 'static,
    S: Clone + Send + Sync + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&S, &I) -> Result<S, E> + Clone + Send + Sync + 'static,
{
    Flow::from_logic("fold", move |_| {
        let logic = TryFoldLogic {
            acc: zero.clone(),
            f: f.clone(),
            _e: PhantomData,
        };
        Ok((logic, ()))
    })
}

// ---------------------------------------------------------------------------------------------
// try_reduce

struct TryReduceLogic<T, F, E> {
    acc: Option<T>,
    f: F,
    _e: PhantomData<fn() -> E>,
}

impl<T, F, E> FlowLogic<T, T> for TryReduceLogic<T, F, E>
where
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&T, &T) -> Result<T, E> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        _out: &mut Vec<T>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let (acc, f) = (&mut self.acc, &mut self.f);
        consume_ref(input, |it| {
            while let Some(x) = it.as_slice().first() {
                let r = acc.as_ref().map(|a| f(a, x));
                let Some(x) = it.next() else { break };
                match r {
                    Some(Ok(a)) => *acc = Some(a),
                    // The first element seeds the aggregate.
                    None => *acc = Some(x),
                    Some(Err(e)) => failed(scx, e, x)?,
                }
            }
            Ok(())
        })
    }

    fn on_finish(&mut self, out: &mut Vec<T>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        match self.acc.take() {
            Some(a) => {
                out.push(a);
                Ok(())
            }
            None => Err(StageError::user(
                "reduce: the stream completed without elements",
            )),
        }
    }
}

/// Final aggregate seeded with the first element, with a fallible function `f(&acc, &x)`;
/// emits the result once. An element whose `f` fails is supervised (Resume keeps the aggregate
/// before it, Restart starts again from the next element).
/// Emits when: upstream completes after at least one element.
/// Backpressures when: never before completion (it consumes everything).
/// Completes when: upstream completes and the result is emitted.
/// Cancels when: downstream cancels.
/// Fails when: `f` fails under Stop (the default), upstream fails, or upstream completes
/// without any element.
pub fn try_reduce<T, E, F>(f: F) -> Flow<T, T>
where
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&T, &T) -> Result<T, E> + Clone + Send + Sync + 'static,
{
    Flow::from_logic("reduce", move |_| {
        let logic = TryReduceLogic {
            acc: None,
            f: f.clone(),
            _e: PhantomData,
        };
        Ok((logic, ()))
    })
}

// ---------------------------------------------------------------------------------------------
// try_take_while / try_take_while_inclusive

struct TryTakeWhileLogic<F, E> {
    pred: F,
    inclusive: bool,
    done: bool,
    _e: PhantomData<fn() -> E>,
}

impl<T, F, E> FlowLogic<T, T> for TryTakeWhileLogic<F, E>
where
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&T) -> Result<bool, E> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if self.done {
            input.clear();
            return Ok(());
        }
        let (pred, inclusive, done) = (&mut self.pred, self.inclusive, &mut self.done);
        consume_ref(input, |it| {
            while let Some(x) = it.as_slice().first() {
                let r = pred(x);
                let Some(x) = it.next() else { break };
                match r {
                    Ok(true) => out.push(x),
                    Ok(false) => {
                        if inclusive {
                            out.push(x);
                        }
                        *done = true;
                        break;
                    }
                    Err(e) => failed(scx, e, x)?,
                }
            }
            Ok::<(), StageError>(())
        })?;
        if self.done {
            input.clear();
        }
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

fn try_take_while_impl<T, E, F>(name: &str, pred: F, inclusive: bool) -> Flow<T, T>
where
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&T) -> Result<bool, E> + Clone + Send + Sync + 'static,
{
    Flow::from_logic(name, move |_| {
        let logic = TryTakeWhileLogic {
            pred: pred.clone(),
            inclusive,
            done: false,
            _e: PhantomData,
        };
        Ok((logic, ()))
    })
}

/// Passes elements while the fallible `pred` holds; the first element it is false for is dropped
/// and upstream cancelled. An element `pred` fails on is supervised (Resume drops it and goes on).
/// Emits when: `pred` holds for the element.
/// Backpressures when: downstream backpressures.
/// Completes when: `pred` is false for an element or upstream completes.
/// Cancels when: `pred` is false for an element, or downstream cancels.
/// Fails when: `pred` fails under Stop (the default), or upstream fails.
pub fn try_take_while<T, E, F>(pred: F) -> Flow<T, T>
where
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&T) -> Result<bool, E> + Clone + Send + Sync + 'static,
{
    try_take_while_impl("take_while", pred, false)
}

/// Like [`try_take_while`] but also emits the first element `pred` is false for.
/// Emits when: `pred` holds, or for the first element it is false for.
/// Backpressures when: downstream backpressures.
/// Completes when: the first element `pred` is false for is emitted, or upstream completes.
/// Cancels when: `pred` is false for an element, or downstream cancels.
/// Fails when: `pred` fails under Stop (the default), or upstream fails.
pub fn try_take_while_inclusive<T, E, F>(pred: F) -> Flow<T, T>
where
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&T) -> Result<bool, E> + Clone + Send + Sync + 'static,
{
    try_take_while_impl("take_while_inclusive", pred, true)
}

// ---------------------------------------------------------------------------------------------
// try_drop_while

struct TryDropWhileLogic<F, E> {
    pred: F,
    dropping: bool,
    _e: PhantomData<fn() -> E>,
}

impl<T, F, E> FlowLogic<T, T> for TryDropWhileLogic<F, E>
where
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&T) -> Result<bool, E> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if self.dropping {
            let (pred, dropping) = (&mut self.pred, &mut self.dropping);
            consume_ref(input, |it| {
                while let Some(x) = it.as_slice().first() {
                    match pred(x) {
                        Ok(true) => {
                            it.next();
                        }
                        Ok(false) => {
                            *dropping = false;
                            break;
                        }
                        Err(e) => {
                            let Some(x) = it.next() else { break };
                            failed(scx, e, x)?;
                        }
                    }
                }
                Ok::<(), StageError>(())
            })?;
        }
        if !self.dropping {
            pass(input, out);
        }
        Ok(())
    }
}

/// Discards elements while the fallible `pred` holds, then passes everything. An element `pred`
/// fails on is supervised (Resume drops it and goes on dropping).
/// Emits when: `pred` was false once and an element arrives.
/// Backpressures when: `pred` was false once and downstream backpressures.
/// Completes when: upstream completes.
/// Cancels when: downstream cancels.
/// Fails when: `pred` fails under Stop (the default), or upstream fails.
pub fn try_drop_while<T, E, F>(pred: F) -> Flow<T, T>
where
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&T) -> Result<bool, E> + Clone + Send + Sync + 'static,
{
    Flow::from_logic("drop_while", move |_| {
        let logic = TryDropWhileLogic {
            pred: pred.clone(),
            dropping: true,
            _e: PhantomData,
        };
        Ok((logic, ()))
    })
}

// ---------------------------------------------------------------------------------------------
// try_inspect

struct TryInspectLogic<F, C, E> {
    f: F,
    on_complete: C,
    _e: PhantomData<fn() -> E>,
}

impl<T, F, C, E> FlowLogic<T, T> for TryInspectLogic<F, C, E>
where
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&T) -> Result<(), E> + Send + 'static,
    C: FnMut() -> Result<(), E> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        out.reserve(input.len());
        let f = &mut self.f;
        consume_ref(input, |it| {
            while let Some(x) = it.as_slice().first() {
                let r = f(x);
                let Some(x) = it.next() else { break };
                match r {
                    Ok(()) => out.push(x),
                    Err(e) => failed(scx, e, x)?,
                }
            }
            Ok(())
        })
    }

    fn on_finish(&mut self, _out: &mut Vec<T>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        (self.on_complete)().map_err(user_failure)
    }
}

/// Calls the fallible `f` on each element and passes it on unchanged, and `on_complete` when
/// upstream completes. An element `f` fails on is supervised (Resume drops it).
/// Emits when: an element arrives and `f` succeeded on it.
/// Backpressures when: downstream backpressures.
/// Completes when: upstream completes and `on_complete` succeeded.
/// Cancels when: downstream cancels.
/// Fails when: `f` fails under Stop (the default), `on_complete` fails, or upstream fails.
pub fn try_inspect<T, E, F, C>(f: F, on_complete: C) -> Flow<T, T>
where
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&T) -> Result<(), E> + Clone + Send + Sync + 'static,
    C: FnMut() -> Result<(), E> + Clone + Send + Sync + 'static,
{
    Flow::from_logic("inspect", move |_| {
        let logic = TryInspectLogic {
            f: f.clone(),
            on_complete: on_complete.clone(),
            _e: PhantomData,
        };
        Ok((logic, ()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::testkit::{Chain, batches, run, run_sup};
    use weir_graph::{DeadLetterSink, Supervision};

    /// Fails on 3 with a plain error, else passes `ok(x)`.
    fn not3<R>(x: i32, ok: R) -> Result<R, String> {
        if x == 3 {
            Err(format!("bad {x}"))
        } else {
            Ok(ok)
        }
    }

    fn sum() -> Flow<i32, i32> {
        try_scan(0, |a: &i32, x: &i32| not3(*x, a + x))
    }

    /// The elements dead-lettered so far, as `i32`s.
    fn letters(store: &std::sync::Arc<std::sync::Mutex<Vec<weir_graph::DeadLetter>>>) -> Vec<i32> {
        let mut v = store
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        v.drain(..)
            .filter_map(|d| d.element.and_then(|e| e.downcast::<i32>().ok()).map(|b| *b))
            .collect()
    }

    #[test]
    fn try_scan_emits_zero_then_aggregates_and_resumes_past_a_failure() {
        assert_eq!(
            run(&sum(), batches(&[1, 2, 4], 2)).ok(),
            Some(vec![0, 1, 3, 7])
        );
        assert_eq!(run(&sum(), vec![]).ok(), Some(vec![0]));
        let (dl, store) = DeadLetterSink::collector();
        let sup = Supervision::resume().with_dead_letters(dl);
        let (_, r) = run_sup(&sum(), vec![vec![1, 2, 3, 4]], Some(sup));
        assert_eq!(r.ok(), Some(vec![0, 1, 3, 7]));
        assert_eq!(letters(&store), vec![3]);
    }

    #[test]
    fn try_scan_stop_fails_with_the_error_after_the_output_before_it() {
        let mut chain = Chain::new(&sum(), None);
        let err = chain.push(vec![1, 3, 5]).err();
        assert_eq!(chain.take_output::<i32>(), vec![0, 1]);
        assert_eq!(err.as_ref().map(|e| e.kind()), Some(ErrorKind::User));
        assert_eq!(
            err.as_ref().map(|e| e.message().to_owned()),
            Some("bad 3".to_owned())
        );
        assert_eq!(err.as_ref().and_then(|e| e.stage()), Some("scan#0"));
    }

    #[test]
    fn try_scan_emits_zero_ahead_of_an_upstream_failure() {
        let mut chain = Chain::new(&sum(), None);
        let r = chain.fail(StageError::user("up"));
        assert_eq!(
            r.err().map(|e| e.message().to_owned()),
            Some("up".to_owned())
        );
        assert_eq!(chain.take_output::<i32>(), vec![0]);
    }

    #[test]
    fn try_fold_emits_once_and_resume_keeps_the_aggregate() {
        let f = try_fold(0, |a: &i32, x: &i32| not3(*x, a * 10 + x));
        assert_eq!(run(&f, batches(&[1, 2, 4], 2)).ok(), Some(vec![124]));
        assert_eq!(run(&f, vec![]).ok(), Some(vec![0]));
        let (dl, store) = DeadLetterSink::collector();
        let sup = Supervision::resume().with_dead_letters(dl);
        let (_, r) = run_sup(&f, vec![vec![1, 3], vec![2]], Some(sup));
        assert_eq!(r.ok(), Some(vec![12]));
        assert_eq!(letters(&store), vec![3]);
        let (got, r) = run_sup(&f, vec![vec![1, 3, 2]], None);
        assert_eq!(
            (got, r.err().map(|e| e.message().to_owned())),
            (vec![], Some("bad 3".to_owned()))
        );
    }

    #[test]
    fn try_reduce_seeds_with_the_first_element_and_fails_when_empty() {
        let r = try_reduce(|a: &i32, x: &i32| not3(*x, a.max(x).to_owned()));
        assert_eq!(run(&r, batches(&[2, 9, 4], 2)).ok(), Some(vec![9]));
        let empty = run(&r, vec![vec![]]).err().map(|e| e.message().to_owned());
        assert_eq!(
            empty,
            Some("reduce: the stream completed without elements".to_owned())
        );
        let (dl, store) = DeadLetterSink::collector();
        let sup = Supervision::resume().with_dead_letters(dl);
        let (_, got) = run_sup(&r, vec![vec![1, 3, 2]], Some(sup));
        assert_eq!(got.ok(), Some(vec![2]));
        assert_eq!(letters(&store), vec![3]);
    }

    #[test]
    fn try_take_while_stops_at_the_first_false_and_supervises_failures() {
        let lt5 = |x: &i32| not3(*x, *x < 5);
        assert_eq!(
            run(&try_take_while(lt5), batches(&[1, 2, 6, 1], 3)).ok(),
            Some(vec![1, 2])
        );
        let inc = try_take_while_inclusive(lt5);
        assert_eq!(run(&inc, batches(&[1, 6, 1], 1)).ok(), Some(vec![1, 6]));
        let mut chain = Chain::new(&try_take_while(lt5), None);
        assert!(chain.push(vec![1, 7, 2]).is_ok());
        assert!(chain.head_done());
        assert_eq!(chain.take_output::<i32>(), vec![1]);
        let (dl, store) = DeadLetterSink::collector();
        let sup = Supervision::resume().with_dead_letters(dl);
        let (_, r) = run_sup(&try_take_while(lt5), vec![vec![1, 3, 4, 8, 2]], Some(sup));
        assert_eq!(r.ok(), Some(vec![1, 4]));
        assert_eq!(letters(&store), vec![3]);
        let (got, r) = run_sup(&try_take_while(lt5), vec![vec![1, 3, 4]], None);
        assert_eq!(
            (got, r.err().map(|e| e.message().to_owned())),
            (vec![1], Some("bad 3".to_owned()))
        );
    }

    #[test]
    fn try_drop_while_passes_from_the_first_false_and_supervises_failures() {
        let lt5 = |x: &i32| not3(*x, *x < 5);
        let dw = try_drop_while(lt5);
        assert_eq!(
            run(&dw, batches(&[1, 2, 6, 1, 3], 2)).ok(),
            Some(vec![6, 1, 3])
        );
        assert_eq!(run(&dw, batches(&[1, 2], 2)).ok(), Some(vec![]));
        let (dl, store) = DeadLetterSink::collector();
        let sup = Supervision::resume().with_dead_letters(dl);
        let (_, r) = run_sup(&dw, vec![vec![1, 3], vec![4, 8, 3]], Some(sup));
        assert_eq!(r.ok(), Some(vec![8, 3]));
        assert_eq!(letters(&store), vec![3]);
        let mut chain = Chain::new(&dw, None);
        let err = chain
            .push(vec![1, 3, 9])
            .err()
            .map(|e| e.message().to_owned());
        assert_eq!(
            (err, chain.take_output::<i32>()),
            (Some("bad 3".to_owned()), vec![])
        );
    }

    #[test]
    fn try_inspect_observes_each_element_and_the_completion() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s1, s2) = (seen.clone(), seen.clone());
        let f = try_inspect(
            move |x: &i32| {
                s1.lock().map(|mut v| v.push(*x)).ok();
                not3(*x, ())
            },
            move || {
                s2.lock().map(|mut v| v.push(-1)).ok();
                Ok::<(), String>(())
            },
        );
        let sup = Supervision::resume();
        let (_, r) = run_sup(&f, vec![vec![1, 3], vec![4]], Some(sup));
        assert_eq!(r.ok(), Some(vec![1, 4]));
        assert_eq!(seen.lock().map(|v| v.clone()).ok(), Some(vec![1, 3, 4, -1]));
        let failing = try_inspect(|_: &i32| Ok::<(), String>(()), || Err("done".to_owned()));
        let (got, r) = run_sup(&failing, vec![vec![1]], None);
        assert_eq!(
            (got, r.err().map(|e| e.message().to_owned())),
            (vec![1], Some("done".to_owned()))
        );
    }

    #[test]
    fn a_stage_error_keeps_its_kind_and_element_and_a_cancellation_is_never_supervised() {
        let f = try_scan(0, |_: &i32, x: &i32| {
            if *x == 1 {
                Err(StageError::timeout("slow").with_element("one"))
            } else {
                Err(StageError::cancelled("stop"))
            }
        });
        let (dl, store) = DeadLetterSink::collector();
        let mut chain = Chain::new(&f, Some(Supervision::resume().with_dead_letters(dl)));
        let r = chain.push(vec![1, 2, 5]);
        let e = r.err();
        assert_eq!(e.as_ref().map(|e| e.kind()), Some(ErrorKind::Cancelled));
        assert_eq!(chain.take_output::<i32>(), vec![0]);
        let letters = store
            .lock()
            .map(|v| {
                v.iter()
                    .map(|d| (d.error.kind(), d.error.element().map(str::to_owned)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        assert_eq!(letters, vec![(ErrorKind::Timeout, Some("one".to_owned()))]);
    }
}
