//! `try_map`: a fallible map whose failures go through the stage's supervision policy.

use std::error::Error;
use std::marker::PhantomData;
use weir_graph::{Flow, FlowLogic, StageCx, StageError, consume_ref};

struct TryMapLogic<F, E> {
    f: F,
    _e: PhantomData<fn() -> E>,
}

impl<I, O, E, F> FlowLogic<I, O> for TryMapLogic<F, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&I) -> Result<O, E> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<I>,
        out: &mut Vec<O>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        out.reserve(input.len());
        let f = &mut self.f;
        consume_ref(input, |it| {
            while let Some(x) = it.as_slice().first() {
                let r = f(x);
                let Some(x) = it.next() else { break };
                match r {
                    Ok(y) => out.push(y),
                    Err(e) => {
                        let err = super::fallible::user_failure(e);
                        scx.element_failed(err, Some(Box::new(x)), None)?;
                    }
                }
            }
            Ok(())
        })
    }
}

/// Flow form of [`SimpleOps::try_map`](super::SimpleOps::try_map).
pub fn try_map<I, O, E, F>(f: F) -> Flow<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    F: FnMut(&I) -> Result<O, E> + Clone + Send + Sync + 'static,
{
    Flow::from_logic("try_map", move |_| {
        Ok((
            TryMapLogic {
                f: f.clone(),
                _e: PhantomData,
            },
            (),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::testkit::{Chain, run_sup};
    use weir_graph::{DeadLetterSink, ErrorKind, Supervision};

    fn parse() -> Flow<&'static str, i32> {
        try_map(|s: &&'static str| s.parse::<i32>())
    }

    #[test]
    fn stop_fails_with_stage_path_and_keeps_rest() {
        let mut chain = Chain::new(&parse(), None);
        let r = chain.push(vec!["1", "x", "3"]);
        let err = r.err();
        assert!(err.as_ref().is_some_and(|e| e.stage() == Some("try_map#0")));
        assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::User));
        assert_eq!(chain.take_output::<i32>(), vec![1]);
    }

    #[test]
    fn resume_drops_to_dead_letters_with_element() {
        let (dl, store) = DeadLetterSink::collector();
        let sup = Supervision::resume().with_dead_letters(dl);
        let (_, r) = run_sup(&parse(), vec![vec!["1", "x"], vec!["3", "y"]], Some(sup));
        assert_eq!(r.ok(), Some(vec![1, 3]));
        let letters = store.lock().map(|v| v.len()).unwrap_or(0);
        assert_eq!(letters, 2);
        let first = store.lock().ok().and_then(|mut v| v.drain(..).next());
        let elem = first
            .and_then(|d| d.element)
            .and_then(|e| e.downcast::<&'static str>().ok());
        assert_eq!(elem.map(|b| *b), Some("x"));
    }

    #[test]
    fn restart_dead_letters_then_asks_for_a_new_instance() {
        let (dl, store) = DeadLetterSink::collector();
        let sup = Supervision::restart().with_dead_letters(dl);
        let (got, r) = run_sup(&parse(), vec![vec!["1", "x", "2"]], Some(sup));
        // The engine recreates the logic and feeds it the rest ("2") left in the input.
        assert!(r.is_err());
        assert_eq!(got, vec![1]);
        assert_eq!(store.lock().map(|v| v.len()).unwrap_or(0), 1);
    }
}
