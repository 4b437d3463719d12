//! Integration tests of keyed aggregation, run by the engine (parallel subtasks included).

use std::collections::BTreeMap;
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::{Promise, SinkLogic, StageCx, promise};
use weir_operators::keyed;
use weir_operators::prelude::*;

/// Collects every element; completes the future with them or with the stream's error.
struct Collect<T> {
    buf: Vec<T>,
    done: Promise<Vec<T>>,
}

impl<T: Send + 'static> SinkLogic<T> for Collect<T> {
    fn on_batch(&mut self, input: &mut Vec<T>, _: &mut StageCx<'_>) -> Result<(), StageError> {
        self.buf.append(input);
        Ok(())
    }
    fn on_finish(&mut self, _: &mut StageCx<'_>) -> Result<(), StageError> {
        self.done.complete(Ok(std::mem::take(&mut self.buf)));
        Ok(())
    }
    fn on_error(&mut self, error: &StageError) {
        self.done.complete(Err(error.clone()));
    }
}

fn collect<T: Send + 'static>() -> Sink<T, SinkFuture<Vec<T>>> {
    Sink::from_logic("collect", |_| {
        let (done, fut) = promise();
        Ok((
            Collect {
                buf: Vec::new(),
                done,
            },
            fut,
        ))
    })
}

/// Runs `src` and returns its pairs sorted by key; fails if a key is emitted twice.
async fn run_map<K: Ord + Send + 'static, V: Send + 'static>(
    src: Source<(K, V)>,
    bs: usize,
) -> Option<BTreeMap<K, V>> {
    let m = Materializer::new().with_batch_size(bs);
    let fut = src.run_with_on(collect(), &m).ok()?;
    let pairs = tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .ok()?
        .ok()?;
    let n = pairs.len();
    let map: BTreeMap<K, V> = pairs.into_iter().collect();
    (map.len() == n).then_some(map)
}

fn text() -> Vec<String> {
    let base = "the quick brown fox jumps over the lazy dog and the fox runs";
    (0..50)
        .flat_map(|i| base.split(' ').map(move |w| format!("{w}{}", i % 7)))
        .collect()
}

fn model_counts(words: &[String]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for w in words {
        *m.entry(w.clone()).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_parallel() {
    let words = text();
    let want = model_counts(&words);
    for p in [1, 2, 4] {
        let src = Source::from_iter(words.clone())
            .key_by(|w: &String| w.clone())
            .count()
            .parallelism(p);
        assert_eq!(
            run_map(src, 16).await,
            Some(want.clone()),
            "parallelism {p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fold_and_reduce_parallel_with_boundaries() {
    let src = Source::range(0u64, 5_000)
        .async_boundary()
        .key_by(|x: &u64| x % 10)
        .fold(Vec::new(), |mut v: Vec<u64>, x| {
            v.push(x);
            v
        })
        .parallelism(3);
    let got = run_map(src, 100).await;
    let ok = got.is_some_and(|m| {
        m.len() == 10
            && m.iter()
                .all(|(k, v)| v.len() == 500 && v.iter().all(|x| x % 10 == *k) && v.is_sorted())
    });
    assert!(ok, "per-key fold keeps every element of its key, in order");
    let src = Source::range(0i64, 1_000)
        .key_by(|x: &i64| x % 4)
        .reduce(|a, b| a.max(b))
        .parallelism(2);
    let want = BTreeMap::from([(0, 996), (1, 997), (2, 998), (3, 999)]);
    assert_eq!(run_map(src, 7).await, Some(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_on_a_flow_and_standalone() {
    let flow =
        Flow::<u32, u32>::from_module(weir_operators::simple::map(|x: u32| x * 3).module().clone())
            .key_by(|x: &u32| x % 2)
            .count()
            .parallelism(2);
    let src = Source::from_iter(0u32..100).via(flow);
    assert_eq!(
        run_map(src, 9).await,
        Some(BTreeMap::from([(0, 50), (1, 50)]))
    );
    let standalone = keyed::count_by_key(|s: &&str| s.len());
    let src = Source::from_iter(vec!["a", "bb", "cc", "d", "eee"]).via(standalone);
    let want = BTreeMap::from([(1, 2), (2, 2), (3, 1)]);
    assert_eq!(run_map(src, 2).await, Some(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_upstream_feeds_parallel_aggregator() {
    let words = text();
    let want = model_counts(&words);
    let n = words.len();
    let shared: &'static [String] = Box::leak(words.into_boxed_slice());
    let src = Source::range(0usize, n)
        .rebalance()
        .map(move |i| shared[i].as_str())
        .parallelism(2)
        .key_by(|w: &&'static str| *w)
        .count()
        .parallelism(3);
    let got = run_map(src, 32)
        .await
        .map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    assert_eq!(got, Some(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_input_emits_no_pairs() {
    let src = Source::<u8>::empty()
        .key_by(|x: &u8| *x)
        .count()
        .parallelism(4);
    assert_eq!(run_map(src, 8).await, Some(BTreeMap::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_hooks_on_parallel_subtasks_with_a_supervised_key_stage() {
    let words = text();
    let mut want = model_counts(&words);
    want.retain(|w, _| !w.starts_with("fox"));
    // The key stage fails on "fox*" words; under Resume they are dropped, the rest counted.
    let keys = weir_operators::simple::try_map(|w: &String| {
        if w.starts_with("fox") {
            Err(StageError::user("no fox"))
        } else {
            Ok(w.clone())
        }
    })
    .with_supervision(Supervision::resume())
    .parallelism(2);
    let counted = keyed::count_keys(keys, |k: String, n: u64| Ok((k, n))).parallelism(3);
    let src = Source::from_iter(words.clone()).rebalance().via(counted);
    assert_eq!(run_map(src, 16).await, Some(want));
    let pairs = weir_operators::simple::map(|x: u64| (x % 10, x)).parallelism(2);
    let add = |a: &u64, x: &u64| Ok(a + x);
    let sums = keyed::try_fold_pairs(pairs, || 0u64, add, |k, s| Ok((k, s))).parallelism(3);
    let src = Source::range(0u64, 1_000).rebalance().via(sums);
    let want: BTreeMap<u64, u64> = (0..10)
        .map(|k| (k, (0..100).map(|i| i * 10 + k).sum()))
        .collect();
    assert_eq!(run_map(src, 7).await, Some(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_distinct_keys_are_emitted_in_chunks_in_first_seen_order() {
    // 300,000 keys: more than the combiner holds (it turns itself off) and several emitted
    // chunks, each sent through the boundary before the next is made.
    let n = 300_000u64;
    let key = move |i: u64| (i * 7919) % n;
    let keys = weir_operators::simple::map(move |i: u64| key(i));
    let counted = keyed::count_keys(keys, |k: u64, c: u64| Ok((k, c)));
    let src = Source::range(0u64, 2 * n).via(counted).async_boundary();
    let m = Materializer::new().with_batch_size(512);
    let fut = src.run_with_on(collect(), &m).expect("materializes");
    let got = tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("completes")
        .expect("no error");
    let want: Vec<(u64, u64)> = (0..n).map(|i| (key(i), 2)).collect();
    assert_eq!(got, want);
}
