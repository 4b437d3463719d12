//! Running and final aggregates: `scan`, `fold`, `reduce`.

use weir_graph::{Flow, FlowLogic, Snapshot, StageCx, StageError, StateCodec, consume, no_codec};

struct ScanLogic<S, F> {
    acc: S,
    f: F,
    started: bool,
    /// Snapshots the accumulator (and whether the seed was emitted), when its type allows.
    codec: Option<StateCodec<(S, bool)>>,
}

impl<I, S, F> FlowLogic<I, S> for ScanLogic<S, F>
where
    I: Send + 'static,
    S: Clone + Send + 'static,
    F: FnMut(&S, I) -> S + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<I>,
        out: &mut Vec<S>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if !self.started {
            self.started = true;
            out.push(self.acc.clone());
        }
        out.reserve(input.len());
        consume(input, |it| {
            for x in it {
                self.acc = (self.f)(&self.acc, x);
                out.push(self.acc.clone());
            }
        });
        Ok(())
    }

    fn on_finish(&mut self, out: &mut Vec<S>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        if !self.started {
            self.started = true;
            out.push(self.acc.clone());
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        let codec = self.codec.ok_or_else(|| no_codec::<S>("scan"))?;
        Ok(Some(codec.encode(&(self.acc.clone(), self.started))?))
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        let codec = self.codec.ok_or_else(|| no_codec::<S>("scan"))?;
        (self.acc, self.started) = codec.decode(snapshot)?;
        Ok(())
    }

    fn on_upstream_error(
        &mut self,
        error: StageError,
        out: &mut Vec<S>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        // `zero` is due on the first demand (as Akka's): it goes ahead of the failure.
        if !self.started {
            self.started = true;
            out.push(self.acc.clone());
        }
        Err(error)
    }
}

/// Flow form of [`SimpleOps::scan`](super::SimpleOps::scan).
pub fn scan<I, S, F>(zero: S, f: F) -> Flow<I, S>
where
    I: Send + 'static,
    S: Clone + Send + Sync + 'static,
    F: FnMut(&S, I) -> S + Clone + Send + Sync + 'static,
{
    scan_impl(zero, f, None)
}

/// [`scan`] whose accumulator is snapshotted with `codec` (e.g. `StateCodec::serde()`), so a
/// checkpoint keeps it and a restored stage goes on from it.
pub fn scan_with_codec<I, S, F>(zero: S, f: F, codec: StateCodec<(S, bool)>) -> Flow<I, S>
where
    I: Send + 'static,
    S: Clone + Send + Sync + 'static,
    F: FnMut(&S, I) -> S + Clone + Send + Sync + 'static,
{
    scan_impl(zero, f, Some(codec))
}

fn scan_impl<I, S, F>(zero: S, f: F, codec: Option<StateCodec<(S, bool)>>) -> Flow<I, S>
where
    I: Send + 'static,
    S: Clone + Send + Sync + 'static,
    F: FnMut(&S, I) -> S + Clone + Send + Sync + 'static,
{
    Flow::from_logic("scan", move |_| {
        let logic = ScanLogic {
            acc: zero.clone(),
            f: f.clone(),
            started: false,
            codec,
        };
        Ok((logic, ()))
    })
}

struct FoldLogic<S, F> {
    acc: Option<S>,
    f: F,
    /// Under supervision: the accumulator before the current call (`f` takes it by value, so a
    /// panic would lose it; Resume goes on from here).
    saved: Option<S>,
    /// Snapshots the accumulator (`None` once emitted), when its type allows.
    codec: Option<StateCodec<Option<S>>>,
}

impl<I, S, F> FlowLogic<I, S> for FoldLogic<S, F>
where
    I: Send + 'static,
    S: Clone + Send + 'static,
    F: FnMut(S, I) -> S + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<I>,
        _out: &mut Vec<S>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let Some(mut acc) = self.acc.take().or_else(|| self.saved.take()) else {
            input.clear();
            return Ok(());
        };
        if scx.supervised() {
            let (f, saved) = (&mut self.f, &mut self.saved);
            acc = consume(input, |it| {
                it.fold(acc, |acc, x| {
                    *saved = Some(acc.clone());
                    f(acc, x)
                })
            });
            self.saved = None;
        } else {
            acc = input.drain(..).fold(acc, &mut self.f);
        }
        self.acc = Some(acc);
        Ok(())
    }

    fn on_finish(&mut self, out: &mut Vec<S>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        // After a panic on the last element the accumulator before it is in `saved`.
        out.extend(self.acc.take().or_else(|| self.saved.take()));
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        let codec = self.codec.ok_or_else(|| no_codec::<S>("fold"))?;
        let acc = self.acc.clone().or_else(|| self.saved.clone());
        Ok(Some(codec.encode(&acc)?))
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        let codec = self.codec.ok_or_else(|| no_codec::<S>("fold"))?;
        self.acc = codec.decode(snapshot)?;
        self.saved = None;
        Ok(())
    }
}

/// Flow form of [`SimpleOps::fold`](super::SimpleOps::fold).
pub fn fold<I, S, F>(zero: S, f: F) -> Flow<I, S>
where
    I: Send + 'static,
    S: Clone + Send + Sync + 'static,
    F: FnMut(S, I) -> S + Clone + Send + Sync + 'static,
{
    fold_impl(zero, f, None)
}

/// [`fold`] whose accumulator is snapshotted with `codec` (e.g. `StateCodec::serde()`), so a
/// checkpoint keeps it and a restored stage goes on from it.
pub fn fold_with_codec<I, S, F>(zero: S, f: F, codec: StateCodec<Option<S>>) -> Flow<I, S>
where
    I: Send + 'static,
    S: Clone + Send + Sync + 'static,
    F: FnMut(S, I) -> S + Clone + Send + Sync + 'static,
{
    fold_impl(zero, f, Some(codec))
}

fn fold_impl<I, S, F>(zero: S, f: F, codec: Option<StateCodec<Option<S>>>) -> Flow<I, S>
where
    I: Send + 'static,
    S: Clone + Send + Sync + 'static,
    F: FnMut(S, I) -> S + Clone + Send + Sync + 'static,
{
    Flow::from_logic("fold", move |_| {
        let logic = FoldLogic {
            acc: Some(zero.clone()),
            f: f.clone(),
            saved: None,
            codec,
        };
        Ok((logic, ()))
    })
}

struct ReduceLogic<T, F> {
    acc: Option<T>,
    f: F,
    /// `f` was running with the accumulator when it panicked: the accumulator is gone.
    lost: bool,
}

/// The error of a `reduce` whose function panicked with the accumulator.
fn reduce_lost() -> StageError {
    StageError::user("reduce: the accumulator was lost when the function panicked")
}

impl<T, F> FlowLogic<T, T> for ReduceLogic<T, F>
where
    T: Send + 'static,
    F: FnMut(T, T) -> T + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        _out: &mut Vec<T>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if self.lost {
            // Resuming would silently start a new total: fail instead (on completion at the latest).
            input.clear();
            return Err(reduce_lost());
        }
        let (acc, f) = (&mut self.acc, &mut self.f);
        self.lost = true;
        consume(input, |it| {
            let first = match acc.take() {
                Some(a) => Some(a),
                None => it.next(),
            };
            *acc = first.map(|a| it.fold(a, f));
        });
        self.lost = false;
        Ok(())
    }

    fn on_finish(&mut self, out: &mut Vec<T>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        if self.lost {
            return Err(reduce_lost());
        }
        match self.acc.take() {
            Some(acc) => {
                out.push(acc);
                Ok(())
            }
            None => Err(StageError::user(
                "reduce: the stream completed without elements",
            )),
        }
    }
}

/// Flow form of [`SimpleOps::reduce`](super::SimpleOps::reduce).
pub fn reduce<T, F>(f: F) -> Flow<T, T>
where
    T: Send + 'static,
    F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
{
    Flow::from_logic("reduce", move |_| {
        Ok((
            ReduceLogic {
                acc: None,
                f: f.clone(),
                lost: false,
            },
            (),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::testkit::{batches, run};

    #[test]
    fn scan_emits_zero_first_even_when_empty() {
        let s = scan(0i64, |a: &i64, x: i64| a + x);
        assert_eq!(run(&s, batches(&[1, 2, 3], 2)).ok(), Some(vec![0, 1, 3, 6]));
        assert_eq!(run(&s, vec![]).ok(), Some(vec![0]));
    }

    #[test]
    fn scan_emits_zero_ahead_of_a_failure_before_any_element() {
        let s = scan(7i64, |a: &i64, x: i64| a + x);
        let mut chain = crate::simple::testkit::Chain::new(&s, None);
        let r = chain.fail(StageError::user("up"));
        assert_eq!(
            r.err().map(|e| e.message().to_owned()),
            Some("up".to_owned())
        );
        assert_eq!(chain.take_output::<i64>(), vec![7]);
    }

    #[test]
    fn fold_emits_once_on_completion() {
        let f = fold(String::new(), |mut a: String, x: char| {
            a.push(x);
            a
        });
        let v: Vec<char> = "hello".chars().collect();
        assert_eq!(run(&f, batches(&v, 2)).ok(), Some(vec!["hello".to_owned()]));
        assert_eq!(run(&f, vec![]).ok(), Some(vec![String::new()]));
    }

    #[test]
    fn reduce_combines_and_fails_on_empty() {
        let r = reduce(|a: u32, b: u32| a.max(b));
        assert_eq!(run(&r, batches(&[3, 9, 2, 7], 3)).ok(), Some(vec![9]));
        assert_eq!(run(&r, vec![vec![], vec![4]]).ok(), Some(vec![4]));
        assert!(run(&r, vec![vec![]]).is_err());
    }
}
