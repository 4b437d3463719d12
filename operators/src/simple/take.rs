//! Prefix operators: `take`, `take_while`, `drop`, `drop_while`.

use weir_graph::{Flow, FlowLogic, Snapshot, StageCx, StageError, consume_ref};

struct TakeLogic {
    left: usize,
}

impl<T: Send + 'static> FlowLogic<T, T> for TakeLogic {
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if input.len() <= self.left {
            self.left -= input.len();
            super::pass(input, out);
        } else {
            out.extend(input.drain(..self.left));
            self.left = 0;
            input.clear();
        }
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.left == 0
    }

    fn wants(&self) -> usize {
        self.left
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(Some(Snapshot::encode(&(self.left as u64))?))
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        self.left = usize::try_from(snapshot.decode::<u64>()?)
            .map_err(|_| StageError::internal("take: restored count does not fit"))?;
        Ok(())
    }
}

/// Flow form of [`SimpleOps::take`](super::SimpleOps::take).
pub fn take<T: Send + 'static>(n: usize) -> Flow<T, T> {
    Flow::from_logic("take", move |_| Ok((TakeLogic { left: n }, ())))
}

struct TakeWhileLogic<F> {
    pred: F,
    inclusive: bool,
    done: bool,
}

impl<T, F> FlowLogic<T, T> for TakeWhileLogic<F>
where
    T: Send + 'static,
    F: FnMut(&T) -> bool + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if self.done {
            input.clear();
            return Ok(());
        }
        let (pred, inclusive, done) = (&mut self.pred, self.inclusive, &mut self.done);
        consume_ref(input, |it| {
            while let Some(x) = it.as_slice().first() {
                let pass = pred(x);
                let Some(x) = it.next() else { break };
                if pass || inclusive {
                    out.push(x);
                }
                if !pass {
                    *done = true;
                    break;
                }
            }
        });
        if self.done {
            input.clear();
        }
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

/// Flow form of [`SimpleOps::take_while`](super::SimpleOps::take_while).
pub fn take_while<T, F>(pred: F) -> Flow<T, T>
where
    T: Send + 'static,
    F: FnMut(&T) -> bool + Clone + Send + Sync + 'static,
{
    take_while_impl("take_while", pred, false)
}

/// Flow form of [`SimpleOps::take_while_inclusive`](super::SimpleOps::take_while_inclusive).
pub fn take_while_inclusive<T, F>(pred: F) -> Flow<T, T>
where
    T: Send + 'static,
    F: FnMut(&T) -> bool + Clone + Send + Sync + 'static,
{
    take_while_impl("take_while_inclusive", pred, true)
}

fn take_while_impl<T, F>(name: &str, pred: F, inclusive: bool) -> Flow<T, T>
where
    T: Send + 'static,
    F: FnMut(&T) -> bool + Clone + Send + Sync + 'static,
{
    Flow::from_logic(name, move |_| {
        let logic = TakeWhileLogic {
            pred: pred.clone(),
            inclusive,
            done: false,
        };
        Ok((logic, ()))
    })
}

struct DropLogic {
    left: usize,
}

impl<T: Send + 'static> FlowLogic<T, T> for DropLogic {
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if self.left > 0 {
            let k = self.left.min(input.len());
            input.drain(..k);
            self.left -= k;
        }
        super::pass(input, out);
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(Some(Snapshot::encode(&(self.left as u64))?))
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        self.left = usize::try_from(snapshot.decode::<u64>()?)
            .map_err(|_| StageError::internal("drop: restored count does not fit"))?;
        Ok(())
    }
}

/// Flow form of [`SimpleOps::drop`](super::SimpleOps::drop).
pub fn drop<T: Send + 'static>(n: usize) -> Flow<T, T> {
    Flow::from_logic("drop", move |_| Ok((DropLogic { left: n }, ())))
}

struct DropWhileLogic<F> {
    pred: F,
    dropping: bool,
}

impl<T, F> FlowLogic<T, T> for DropWhileLogic<F>
where
    T: Send + 'static,
    F: FnMut(&T) -> bool + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if self.dropping {
            let (pred, dropping) = (&mut self.pred, &mut self.dropping);
            consume_ref(input, |it| {
                while let Some(x) = it.as_slice().first() {
                    if !pred(x) {
                        *dropping = false;
                        break;
                    }
                    it.next();
                }
            });
        }
        super::pass(input, out);
        Ok(())
    }
}

/// Flow form of [`SimpleOps::drop_while`](super::SimpleOps::drop_while).
pub fn drop_while<T, F>(pred: F) -> Flow<T, T>
where
    T: Send + 'static,
    F: FnMut(&T) -> bool + Clone + Send + Sync + 'static,
{
    Flow::from_logic("drop_while", move |_| {
        let logic = DropWhileLogic {
            pred: pred.clone(),
            dropping: true,
        };
        Ok((logic, ()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::testkit::{Chain, batches, run};

    #[test]
    fn take_stops_and_signals_done() {
        let v: Vec<u8> = (0..10).collect();
        assert_eq!(run(&take(4), batches(&v, 3)).ok(), Some(vec![0, 1, 2, 3]));
        assert_eq!(run(&take(0), batches(&v, 3)).ok(), Some(vec![]));
        let mut chain = Chain::new(&take::<u8>(2), None);
        assert!(chain.push(vec![1u8]).is_ok());
        assert!(!chain.head_done());
        assert!(chain.push(vec![2u8, 3]).is_ok());
        assert!(chain.head_done());
    }

    #[test]
    fn take_while_both_variants() {
        let v = [1, 2, 5, 1, 2];
        let lt3 = |x: &i32| *x < 3;
        assert_eq!(run(&take_while(lt3), batches(&v, 2)).ok(), Some(vec![1, 2]));
        assert_eq!(
            run(&take_while_inclusive(lt3), batches(&v, 1)).ok(),
            Some(vec![1, 2, 5])
        );
    }

    #[test]
    fn drop_and_drop_while() {
        let v: Vec<u8> = (0..6).collect();
        assert_eq!(run(&drop(4), batches(&v, 3)).ok(), Some(vec![4, 5]));
        assert_eq!(run(&drop(9), batches(&v, 3)).ok(), Some(vec![]));
        let dw = drop_while(|x: &u8| *x % 4 != 3);
        assert_eq!(
            run(&dw, batches(&[0, 1, 3, 0, 1], 2)).ok(),
            Some(vec![3, 0, 1])
        );
    }
}
