//! A sharded counter: a shard region makes one counter actor per key on the key's first
//! message, spread over two subtasks by a hash of the key; each counter emits its running count.

use std::collections::BTreeMap;
use weir::operators::actor::{Actor, Ctx, Props, RegionSettings, sharded};
use weir::prelude::*;

/// Counts the messages of one key.
pub struct KeyCounter {
    key: String,
    n: u64,
}

impl Actor for KeyCounter {
    type Msg = String;
    type Out = (String, u64);
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, _msg: String) -> Result<(), StageError> {
        self.n += 1;
        ctx.emit((self.key.clone(), self.n));
        Ok(())
    }
}

/// Counts the words of `text` with one entity per word; the last count of each word, and how
/// many entities the region made.
pub async fn run(text: &str) -> Result<(BTreeMap<String, u64>, u64), crate::ExampleError> {
    let words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    let settings = RegionSettings::default().parallelism(2);
    let stats = settings.stats();
    let counts = Source::from_iter(words)
        .via(sharded(
            |key: &String| {
                let key = key.clone();
                Props::new(move || KeyCounter {
                    key: key.clone(),
                    n: 0,
                })
            },
            |w: &String| w.clone(),
            settings,
        ))
        .run_with(Sink::fold(
            BTreeMap::new(),
            |mut m: BTreeMap<String, u64>, (k, n)| {
                let e = m.entry(k).or_default();
                *e = (*e).max(n);
                m
            },
        ))?
        .await?;
    Ok((counts, stats.created()))
}
