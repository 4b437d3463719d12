//! Tiny local stages shared by the operator integration tests (independent of the source and
//! sink families, so those families' bugs cannot hide junction or substream bugs).
#![allow(dead_code, reason = "each test file uses a subset")]

use std::task::{Context, Poll};
use weir_engine::prelude::*;
use weir_graph::{
    Promise, Sink, SinkFuture, SinkLogic, Source, SourceLogic, StageCx, StageError, Step, promise,
};

pub struct Iter<T>(std::vec::IntoIter<T>, Option<String>);

impl<T: Send + 'static> SourceLogic<T> for Iter<T> {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        out.extend(self.0.by_ref().take(scx.batch_size()));
        if self.0.len() > 0 {
            return Poll::Ready(Ok(Step::More));
        }
        match self.1.take() {
            Some(msg) if out.is_empty() => Poll::Ready(Err(StageError::user(msg))),
            Some(msg) => {
                self.1 = Some(msg);
                Poll::Ready(Ok(Step::More))
            }
            None => Poll::Ready(Ok(Step::Done)),
        }
    }
}

pub fn from_vec<T: Clone + Send + Sync + 'static>(v: Vec<T>) -> Source<T, ()> {
    Source::from_logic("iter", move |_| Ok((Iter(v.clone().into_iter(), None), ())))
}

pub fn failing<T: Clone + Send + Sync + 'static>(v: Vec<T>, msg: &str) -> Source<T, ()> {
    let msg = msg.to_owned();
    Source::from_logic("failing", move |_| {
        Ok((Iter(v.clone().into_iter(), Some(msg.clone())), ()))
    })
}

pub struct Collect<T>(Vec<T>, Promise<Vec<T>>);

impl<T: Send + 'static> SinkLogic<T> for Collect<T> {
    fn on_batch(&mut self, input: &mut Vec<T>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.0.append(input);
        Ok(())
    }
    fn on_finish(&mut self, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.1.complete(Ok(std::mem::take(&mut self.0)));
        Ok(())
    }
    fn on_error(&mut self, error: &StageError) {
        self.1.complete(Err(error.clone()));
    }
}

pub fn collect<T: Send + 'static>() -> Sink<T, SinkFuture<Vec<T>>> {
    Sink::from_logic("collect", |_| {
        let (p, f) = promise();
        Ok((Collect(Vec::new(), p), f))
    })
}

pub async fn run_collect<T: Send + 'static>(src: Source<T, ()>) -> Result<Vec<T>, StageError> {
    let fut = src
        .to_sink_mat(collect())
        .run()
        .map_err(|e| StageError::internal(e.to_string()))?;
    fut.await
}

pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}
