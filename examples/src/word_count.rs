//! Parallel word count: split lines on parallel subtasks, count per word by key.

use std::sync::Arc;
use weir::prelude::*;

/// Counts the words of `lines` with `parallelism` split and count subtasks; sorted by word.
pub async fn run(
    lines: Vec<String>,
    parallelism: usize,
) -> Result<Vec<(String, u64)>, crate::ExampleError> {
    let lines = Arc::new(lines);
    let n = lines.len();
    let mut counts = Source::range(0usize, n)
        .flat_map(move |i: usize| {
            lines[i]
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .parallelism(parallelism)
        .key_by(|w: &String| w.clone())
        .count()
        .parallelism(parallelism)
        .run_with(Sink::collect())?
        .await?;
    counts.sort();
    Ok(counts)
}
