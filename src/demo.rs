//! The demo job run by `weir demo`, and the deterministic word corpus shared with the benchmarks.

use crate::prelude::*;
use std::sync::Arc;
use weir_operators::actor::{Actor, Ctx, Props};

/// A small deterministic PRNG (SplitMix64) so corpora are identical on every run and machine.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A uniform float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Generates `lines` lines of `words_per_line` words drawn with a Zipf(s=1) distribution from a
/// vocabulary of `vocab` random lowercase words of 3-10 letters.
pub fn zipf_corpus(lines: usize, words_per_line: usize, vocab: usize, seed: u64) -> Vec<String> {
    let mut rng = SplitMix64::new(seed);
    let mut words = Vec::with_capacity(vocab);
    let mut seen = std::collections::HashSet::new();
    while words.len() < vocab {
        let len = 3 + (rng.next_u64() % 8) as usize;
        let w: String = (0..len)
            .map(|_| char::from(b'a' + (rng.next_u64() % 26) as u8))
            .collect();
        if seen.insert(w.clone()) {
            words.push(w);
        }
    }
    let mut cdf = Vec::with_capacity(vocab);
    let mut acc = 0.0;
    for k in 1..=vocab {
        acc += 1.0 / k as f64;
        cdf.push(acc);
    }
    let total = acc;
    let mut out = Vec::with_capacity(lines);
    for _ in 0..lines {
        let mut line = String::with_capacity(words_per_line * 8);
        for i in 0..words_per_line {
            let u = rng.next_f64() * total;
            let idx = cdf.partition_point(|c| *c < u).min(vocab - 1);
            if i > 0 {
                line.push(' ');
            }
            line.push_str(&words[idx]);
        }
        out.push(line);
    }
    out
}

/// What the leaderboard actor emits when the stream ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Leaderboard {
    /// Distinct words seen.
    pub distinct: usize,
    /// Total of their counts.
    pub total: u64,
    /// The ten most frequent words, most frequent first (ties by word).
    pub top: Vec<(String, u64)>,
}

/// An actor keeping the ten most frequent words of the `(word, count)` pairs it is sent, and
/// emitting its [`Leaderboard`] when it stops; its state is checkpointed with the run.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LeaderboardActor {
    board: Leaderboard,
}

impl Actor for LeaderboardActor {
    type Msg = (String, u64);
    type Out = Leaderboard;
    fn handle(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
        (word, count): (String, u64),
    ) -> Result<(), StageError> {
        let b = &mut self.board;
        b.distinct += 1;
        b.total += count;
        let rank = |e: &(String, u64)| (std::cmp::Reverse(e.1), e.0.clone());
        let at = b
            .top
            .partition_point(|e| rank(e) < (std::cmp::Reverse(count), word.clone()));
        if at < 10 {
            b.top.insert(at, (word, count));
            b.top.truncate(10);
        }
        Ok(())
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.emit(std::mem::take(&mut self.board));
    }
}

/// The demo's result: the most frequent words and the run's per-stage metrics.
#[derive(Debug)]
pub struct DemoReport {
    /// Distinct words counted.
    pub distinct: usize,
    /// Total words counted.
    pub total: u64,
    /// The ten most frequent words with their counts.
    pub top: Vec<(String, u64)>,
    /// Per-stage metrics of the run.
    pub metrics: Vec<weir_engine::StageMetricsSnapshot>,
    /// Checkpoints the run completed (its counts live in a RocksDB backend).
    pub checkpoints: u64,
}

/// The demo pipeline over `corpus`: lines split into words and counted by key over
/// `parallelism` subtasks in the run's state backend, then ranked by a leaderboard actor stage
/// (checkpointed too); its value is the leaderboard.
pub fn word_count_graph(
    corpus: Arc<Vec<String>>,
    parallelism: usize,
) -> RunnableGraph<weir_graph::SinkFuture<Leaderboard>> {
    let n = corpus.len();
    Source::range(0usize, n)
        .flat_map(move |i: usize| corpus[i].split(' ').map(str::to_owned).collect::<Vec<_>>())
        .named("split")
        .parallelism(parallelism)
        .key_by(|w: &String| w.clone())
        .in_backend()
        .count()
        .named("count")
        .parallelism(parallelism)
        .via(
            Flow::actor(Props::<LeaderboardActor>::default_of().checkpointed())
                .named("leaderboard"),
        )
        .to_mat(Sink::head(), Keep::right)
}

/// Runs the demo pipeline: a word count over a generated corpus, split and counted by key over
/// `parallelism` subtasks, the counts kept in a RocksDB state backend in a temporary directory
/// and checkpointed every 50 ms (a final checkpoint is written once every stage finished), then
/// ranked by a leaderboard actor stage (checkpointed too).
pub async fn word_count(lines: usize, parallelism: usize) -> Result<DemoReport, EngineError> {
    word_count_on(Materializer::new(), lines, parallelism, None).await
}

/// [`word_count`] on `m` (which may carry a name, the UI's observers, a runtime), checkpointed
/// with `checkpoints` when given, else every 50 ms into a temporary directory.
pub async fn word_count_on(
    m: Materializer,
    lines: usize,
    parallelism: usize,
    checkpoints: Option<weir_engine::CheckpointConfig>,
) -> Result<DemoReport, EngineError> {
    let corpus = Arc::new(zipf_corpus(lines, 10, 10_000, 42));
    let root = std::env::temp_dir().join(format!("weir-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let fail = |e: &dyn std::fmt::Display| EngineError::Stage(StageError::internal(e.to_string()));
    let backend = Arc::new(
        weir_state_rocksdb::RocksDbBackend::open(root.join("state")).map_err(|e| fail(&e))?,
    );
    let held = Arc::clone(&backend);
    let clock: Arc<dyn weir_graph::Clock> = Arc::new(weir_engine::SystemClock::new());
    let m = m
        .with_clock(clock.clone())
        .with_service(Arc::new(weir_state::StateService::new(backend, clock)))
        .with_checkpoints(checkpoints.unwrap_or_else(|| {
            weir_engine::CheckpointConfig::new(
                std::time::Duration::from_millis(50),
                root.join("checkpoints"),
            )
        }));
    let graph = word_count_graph(corpus, parallelism);
    let run = async {
        let (fut, handle) = m.materialize(&graph)?;
        let board = fut.await?;
        handle.wait().await?;
        let checkpoints = handle
            .checkpoints()
            .and_then(|c| c.latest_completed())
            .unwrap_or(0);
        Ok::<_, EngineError>((board, handle.metrics(), checkpoints))
    };
    let result = run.await;
    drop(m);
    drop(graph);
    // The finished run's stages let go of the backend shortly after it completes (a view of the
    // run kept by the operations registry holds none of its services once it ended).
    for _ in 0..1000 {
        if Arc::strong_count(&held) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    drop(held);
    let _ = std::fs::remove_dir_all(&root);
    let (board, metrics, checkpoints) = result?;
    Ok(DemoReport {
        distinct: board.distinct,
        total: board.total,
        top: board.top,
        metrics,
        checkpoints,
    })
}
