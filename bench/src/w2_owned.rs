//! W2 with owned `String` words: `key_by(|w: &String| w.clone()).count()` clones every word
//! into its key; `count_by(|w: String| w)` moves the word into the key instead.

use super::{checksum, emit, materializer, reset_peak_rss};
use std::time::Instant;
use weir::prelude::*;

/// Runs both owned-key variants over `corpus` at each parallelism of `pars`; `expected` is the
/// checksum of the counts.
pub(super) fn run(
    rt: &weir::engine::Runtime,
    corpus: &'static [String],
    pars: &[usize],
    batch: Option<usize>,
    expected: &str,
) {
    let n: u64 = corpus.iter().map(|l| l.split(' ').count() as u64).sum();
    for &p in pars {
        let words = Source::range(0usize, corpus.len())
            .flat_map(move |i: usize| corpus[i].split(' ').map(str::to_owned))
            .parallelism(p);
        let cloned = words
            .clone()
            .key_by(|w: &String| w.clone())
            .count()
            .parallelism(p)
            .to_mat(Sink::collect(), Keep::right);
        let moved = words
            .count_by(|w: String| w)
            .parallelism(p)
            .to_mat(Sink::collect(), Keep::right);
        for (variant, g) in [
            ("weir_owned_key_by_clone", cloned),
            ("weir_owned_count_by", moved),
        ] {
            let m = materializer(batch);
            reset_peak_rss();
            let t = Instant::now();
            let got = rt.block_on(async {
                let (f, h) = m
                    .materialize(&g)
                    .map_err(|e| StageError::internal(e.to_string()))?;
                let v = f.await?;
                h.wait().await?;
                Ok::<_, StageError>(v)
            });
            let secs = t.elapsed().as_secs_f64();
            match got {
                Ok(v) => {
                    let c = checksum(v.iter().map(|(w, c)| (w.as_str(), *c)).collect());
                    if c != expected {
                        eprintln!("w2 {variant} parallelism {p}: checksum mismatch");
                    }
                    emit("w2", variant, n, p, secs, &c, "");
                }
                Err(e) => eprintln!("w2 {variant} parallelism {p} failed: {e}"),
            }
        }
    }
}
