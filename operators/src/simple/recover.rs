//! Turning an upstream failure into final elements: `recover`, `recover_with`.

use weir_graph::{Flow, FlowLogic, StageCx, StageError};

/// Passes elements through; on an upstream failure emits what `f` returns for it and completes
/// (`None`: the failure goes on).
struct RecoverLogic<F> {
    f: F,
}

impl<T, F> FlowLogic<T, T> for RecoverLogic<F>
where
    T: Send + 'static,
    F: FnMut(&StageError) -> Result<Option<Vec<T>>, StageError> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        super::pass(input, out);
        Ok(())
    }

    fn on_upstream_error(
        &mut self,
        error: StageError,
        out: &mut Vec<T>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        // The error of `f` itself is this stage's (the upstream one keeps its own stage).
        let recovered = (self.f)(&error).map_err(|e| e.with_stage(&scx.info().path))?;
        match recovered {
            Some(xs) => {
                out.extend(xs);
                Ok(())
            }
            None => Err(error),
        }
    }
}

fn recover_named<T, F>(name: &'static str, f: F) -> Flow<T, T>
where
    T: Send + 'static,
    F: FnMut(&StageError) -> Result<Option<Vec<T>>, StageError> + Clone + Send + Sync + 'static,
{
    Flow::from_logic(name, move |_| Ok((RecoverLogic { f: f.clone() }, ())))
}

/// Flow form of [`SimpleOps::recover`](super::SimpleOps::recover).
pub fn recover<T, F>(mut f: F) -> Flow<T, T>
where
    T: Send + 'static,
    F: FnMut(&StageError) -> Option<T> + Clone + Send + Sync + 'static,
{
    recover_named("recover", move |e: &StageError| Ok(f(e).map(|x| vec![x])))
}

/// On upstream failure emits what the fallible `f` returns for it and completes (`Ok(None)`:
/// the failure goes on; `Err`: the stage fails with `f`'s error instead).
/// Emits when: an element arrives, or upstream failed and `f` returned `Ok(Some)`.
/// Backpressures when: downstream backpressures.
/// Completes when: upstream completes, or fails and `f` returned `Ok(Some)`.
/// Cancels when: downstream cancels.
/// Fails when: upstream fails and `f` returned `Ok(None)` (that failure) or `Err` (its error).
pub fn try_recover<T, F>(mut f: F) -> Flow<T, T>
where
    T: Send + 'static,
    F: FnMut(&StageError) -> Result<Option<T>, StageError> + Clone + Send + Sync + 'static,
{
    recover_named("recover", move |e: &StageError| {
        f(e).map(|x| x.map(|x| vec![x]))
    })
}

/// Flow form of [`SimpleOps::recover_with`](super::SimpleOps::recover_with).
pub fn recover_with<T, F>(f: F) -> Flow<T, T>
where
    T: Send + 'static,
    F: FnMut(&StageError) -> Option<Vec<T>> + Clone + Send + Sync + 'static,
{
    let mut f = f;
    recover_named("recover_with", move |e: &StageError| Ok(f(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::testkit::Chain;
    use weir_graph::ErrorKind;

    fn only_user(e: &StageError) -> bool {
        e.kind() == ErrorKind::User
    }

    #[test]
    fn recover_emits_and_completes_or_rethrows() {
        let f = recover(|e: &StageError| only_user(e).then_some(-1));
        let mut chain = Chain::new(&f, None);
        assert!(chain.push(vec![1, 2]).is_ok());
        assert!(chain.fail(StageError::user("boom")).is_ok());
        assert_eq!(chain.take_output::<i32>(), vec![1, 2, -1]);
        let mut chain = Chain::new(&f, None);
        let r = chain.fail(StageError::internal("bug"));
        assert_eq!(r.err().map(|e| e.kind()), Some(ErrorKind::Internal));
        assert_eq!(chain.take_output::<i32>(), Vec::<i32>::new());
    }

    #[test]
    fn recover_with_emits_many() {
        let f = recover_with(|e: &StageError| only_user(e).then(|| vec![7, 8]));
        let mut chain = Chain::new(&f, None);
        assert!(chain.push(vec![1]).is_ok());
        assert!(chain.fail(StageError::user("boom")).is_ok());
        assert_eq!(chain.take_output::<i32>(), vec![1, 7, 8]);
        let mut chain = Chain::new(&f, None);
        assert!(chain.fail(StageError::timeout("late")).is_err());
    }

    #[test]
    fn try_recover_emits_rethrows_or_fails_with_its_own_error() {
        let f = try_recover(|e: &StageError| match e.kind() {
            ErrorKind::User => Ok(Some(-1)),
            ErrorKind::Timeout => Ok(None),
            _ => Err(StageError::user("recover failed")),
        });
        let mut chain = Chain::new(&f, None);
        assert!(chain.push(vec![1]).is_ok());
        assert!(chain.fail(StageError::user("boom")).is_ok());
        assert_eq!(chain.take_output::<i32>(), vec![1, -1]);
        let mut chain = Chain::new(&f, None);
        let r = chain.fail(StageError::timeout("late"));
        assert_eq!(
            r.err().map(|e| e.message().to_owned()),
            Some("late".to_owned())
        );
        let mut chain = Chain::new(&f, None);
        let r = chain.fail(StageError::internal("bug"));
        assert_eq!(
            r.err().map(|e| (
                e.kind(),
                e.message().to_owned(),
                e.stage().map(str::to_owned)
            )),
            Some((
                ErrorKind::User,
                "recover failed".to_owned(),
                Some("recover#0".to_owned())
            ))
        );
        assert_eq!(chain.take_output::<i32>(), Vec::<i32>::new());
    }
}
