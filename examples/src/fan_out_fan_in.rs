//! Fan-out / fan-in: broadcast one stream to two branches and merge them back.

use weir::operators::fan::{Broadcast, Merge};
use weir::prelude::*;

/// Broadcasts 0..5 to a "x10" branch and a "+100" branch and merges the results.
pub async fn run() -> Result<Vec<u64>, crate::ExampleError> {
    let mut b = GraphBuilder::new();
    let (src, _) = b.add_source(Source::range(0u64, 5));
    let bc = b.add(Broadcast::<u64>::new(2));
    let merge = b.add(Merge::<u64>::new(2));
    let times_ten = b.via(bc.outlets[0], Flow::identity().map(|x: u64| x * 10))?;
    let plus_hundred = b.via(bc.outlets[1], Flow::identity().map(|x: u64| x + 100))?;
    let (sink, out) = b.add_sink(Sink::collect());
    b.connect(src, bc.inlet)?;
    b.connect(times_ten, merge.inlets[0])?;
    b.connect(plus_hundred, merge.inlets[1])?;
    b.connect(merge.outlet, sink)?;
    let graph = b.build_mat(move |m| m.take(out))?;
    let mut v = graph.run()?.ok_or("materialized value missing")?.await?;
    v.sort_unstable();
    Ok(v)
}
