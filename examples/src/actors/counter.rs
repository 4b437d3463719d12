//! Counter actor: counts the words it is sent and emits the counts when the stream ends.

use std::collections::BTreeMap;
use weir::operators::actor::{Actor, Ctx, Props};
use weir::prelude::*;

/// Counts occurrences per word; `post_stop` emits `(word, count)` in word order.
#[derive(Default)]
struct WordCounter {
    counts: BTreeMap<String, u64>,
}

impl Actor for WordCounter {
    type Msg = String;
    type Out = (String, u64);
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, word: String) -> Result<(), StageError> {
        *self.counts.entry(word).or_default() += 1;
        Ok(())
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.emit_all(std::mem::take(&mut self.counts));
    }
}

/// Sends the words of a sentence through a counter actor flow.
pub async fn run() -> Result<Vec<(String, u64)>, crate::ExampleError> {
    let words = "the cat saw the dog and the dog saw the cat";
    let out = Source::from_iter(words.split(' ').map(str::to_owned))
        .via(Flow::actor(Props::<WordCounter>::default_of()))
        .run_with(Sink::collect())?
        .await?;
    Ok(out)
}
