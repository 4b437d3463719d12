//! Hello pipeline: a source, two fused flows and a sink.

use weir::prelude::*;

/// Doubles the numbers 1..=10, keeps multiples of 3 and collects them.
pub async fn run() -> Result<Vec<u64>, crate::ExampleError> {
    let out = Source::range(1u64, 11)
        .map(|x| x * 2)
        .filter(|x| x % 3 == 0)
        .run_with(Sink::collect())?
        .await?;
    Ok(out)
}
