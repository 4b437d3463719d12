//! W2's keyed variants. With owned `String` words: `key_by(|w: &String| w.clone()).count()`
//! clones every word into its key; `count_by(|w: String| w)` moves the word into the key
//! instead. As a fold (`key_by(|w| *w).fold(..)`, no combiner): every word crosses the hash
//! exchange, so each one pays the routing hash. And the routing hash alone over the corpus's
//! words: the stable xxh3 hash keys route by now, against the fixed-seed `ahash` before.

use super::{checksum, emit, materializer, run_timed};
use std::hint::black_box;
use std::time::Instant;
use weir::prelude::*;

/// Hashes every word of `corpus` with the routing hash and with the former `ahash` router.
pub(super) fn hashes(corpus: &'static [String]) {
    let words: Vec<&str> = corpus.iter().flat_map(|l| l.split(' ')).collect();
    let n = words.len() as u64;
    let former = ahash::RandomState::with_seeds(
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    );
    for _ in 0..2 {
        timed_hash("hash_ahash_fixed_seeds", n, || {
            words.iter().fold(0u64, |acc, w| {
                acc.wrapping_add(former.hash_one(black_box(*w)))
            })
        });
        timed_hash("hash_stable_xxh3", n, || {
            words.iter().fold(0u64, |acc, w| {
                acc.wrapping_add(weir::graph::stable_hash_of(black_box(*w)))
            })
        });
        timed_hash("hash_u64_ahash_fixed_seeds", n, || {
            (0..n).fold(0u64, |acc, i| {
                acc.wrapping_add(former.hash_one(black_box(i)))
            })
        });
        timed_hash("hash_u64_stable_xxh3", n, || {
            (0..n).fold(0u64, |acc, i| {
                acc.wrapping_add(weir::graph::stable_hash_of(&black_box(i)))
            })
        });
    }
}

/// Times `hash_all` (which hashes `n` values) and prints its line as `variant`.
fn timed_hash(variant: &str, n: u64, hash_all: impl FnOnce() -> u64) {
    let t = Instant::now();
    black_box(hash_all());
    emit("w2", variant, n, 1, t.elapsed().as_secs_f64(), "", "");
}

/// Counts the words with a keyed fold (every word routed by its hash) at each parallelism.
pub(super) fn fold(
    rt: &weir::engine::Runtime,
    corpus: &'static [String],
    pars: &[usize],
    batch: Option<usize>,
    expected: &str,
) {
    let n: u64 = corpus.iter().map(|l| l.split(' ').count() as u64).sum();
    for &p in pars {
        let g = Source::range(0usize, corpus.len())
            .flat_map(move |i: usize| corpus[i].split(' '))
            .parallelism(p)
            .key_by(|w: &&'static str| *w)
            .fold(0u64, |a, _| a + 1)
            .parallelism(p)
            .to_mat(Sink::collect(), Keep::right);
        let m = materializer(batch);
        let (secs, got) = run_timed(rt, &m, &g);
        match got {
            Ok(v) => {
                let c = checksum(v);
                if c != expected {
                    eprintln!("w2 weir_fold parallelism {p}: checksum mismatch");
                }
                emit("w2", "weir_fold", n, p, secs, &c, "");
            }
            Err(e) => eprintln!("w2 weir_fold parallelism {p} failed: {e}"),
        }
    }
}

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
            let (secs, got) = run_timed(rt, &m, &g);
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
