//! `limit`: passes elements unchanged and fails once upstream emits more than `n`.

use weir_graph::{Flow, FlowLogic, StageCx, StageError};

/// The failure of `limit(n)` when upstream emits an element past the `n`-th.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream limit reached: {stage} allows at most {n} elements")]
pub struct StreamLimitReached {
    /// The path of the `limit` stage.
    pub stage: String,
    /// The limit the stream exceeded.
    pub n: usize,
}

struct LimitLogic {
    n: usize,
    left: usize,
}

impl<T: Send + 'static> FlowLogic<T, T> for LimitLogic {
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if input.len() <= self.left {
            self.left -= input.len();
            super::pass(input, out);
            return Ok(());
        }
        // The elements within the limit go downstream ahead of the failure.
        out.extend(input.drain(..self.left));
        self.left = 0;
        input.clear();
        let stage = scx.info().path.clone();
        Err(StageError::from_error(StreamLimitReached {
            stage: stage.clone(),
            n: self.n,
        })
        .with_stage(&stage))
    }
}

/// Flow form of [`SimpleOps::limit`](super::SimpleOps::limit).
pub fn limit<T: Send + 'static>(n: usize) -> Flow<T, T> {
    Flow::from_logic("limit", move |_| Ok((LimitLogic { n, left: n }, ())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::testkit::{batches, run_sup};

    #[test]
    fn passes_up_to_n_then_fails_naming_the_stage_and_n() {
        let v: Vec<u8> = (1..=5).collect();
        let (got, r) = run_sup(&limit(3), batches(&v, 2), None);
        assert_eq!(got, vec![1, 2, 3]);
        let err = r.expect_err("more than 3 elements must fail");
        let cause = err
            .downcast_cause::<StreamLimitReached>()
            .expect("a StreamLimitReached cause");
        assert_eq!(cause.n, 3);
        assert_eq!(cause.stage, "limit#0");
        assert_eq!(err.stage(), Some("limit#0"));
        assert_eq!(
            err.message(),
            "stream limit reached: limit#0 allows at most 3 elements"
        );
    }

    #[test]
    fn a_stream_of_exactly_n_completes_unchanged() {
        let v: Vec<u8> = (1..=3).collect();
        let (_, r) = run_sup(&limit(3), batches(&v, 2), None);
        assert_eq!(r.ok(), Some(vec![1, 2, 3]));
    }
}
