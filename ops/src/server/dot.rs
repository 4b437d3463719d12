//! Graphviz DOT rendering of a physical plan: islands as clusters holding their stages in chain
//! order, channel edges dashed and labelled with their distribution.

use super::views::{kind_label, node_of};
use std::fmt::Write as _;
use weir_engine::plan::{Endpoint, IslandKind, PhysicalPlan};

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Renders `p` as a DOT digraph.
pub(crate) fn render(p: &PhysicalPlan) -> String {
    let mut s = String::from("digraph plan {\n  rankdir=LR;\n  node [shape=box];\n");
    for isl in &p.islands {
        let kind = match isl.kind {
            IslandKind::Chain => "chain",
            IslandKind::Async => "async",
        };
        let _ = writeln!(s, "  subgraph cluster_i{} {{", isl.id);
        let _ = writeln!(
            s,
            "    label=\"island {} ({kind}, x{})\";",
            isl.id, isl.parallelism
        );
        for (k, n) in isl.nodes.iter().enumerate() {
            let name = p.module.nodes.get(*n).map_or("?", |nd| nd.display_name());
            let _ = writeln!(s, "    n{n} [label=\"{}\"];", quote(name));
            if k > 0 {
                let _ = writeln!(s, "    n{} -> n{n};", isl.nodes[k - 1]);
            }
        }
        s.push_str("  }\n");
    }
    for e in &p.edges {
        let end = |ep: &Endpoint, input: bool| match node_of(p, ep, input) {
            Some(n) => format!("n{n}"),
            None => match ep {
                Endpoint::External(k) if input => format!("ext_out{k}"),
                Endpoint::External(k) => format!("ext_in{k}"),
                Endpoint::Island { .. } => "unknown".into(),
            },
        };
        let demand = if e.on_demand { ", demand" } else { "" };
        let _ = writeln!(
            s,
            "  {} -> {} [style=dashed, label=\"{}{demand}\"];",
            end(&e.from, false),
            end(&e.to, true),
            kind_label(e.kind)
        );
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use weir_engine::Materializer;
    use weir_operators::prelude::*;
    use weir_operators::simple;

    #[test]
    fn islands_are_clusters_and_channels_dashed_edges() {
        let g = Source::from_iter(vec![1u64])
            .via(
                simple::map(|x: u64| x + 1)
                    .named("plus \"one\"")
                    .async_boundary(),
            )
            .via(simple::filter(|x: &u64| *x > 0))
            .to(Sink::ignore());
        let p = Materializer::new().plan(&g).unwrap();
        let want = r#"digraph plan {
  rankdir=LR;
  node [shape=box];
  subgraph cluster_i0 {
    label="island 0 (chain, x1)";
    n0 [label="from_iter"];
    n1 [label="plus \"one\""];
    n0 -> n1;
  }
  subgraph cluster_i1 {
    label="island 1 (chain, x1)";
    n2 [label="filter"];
    n3 [label="ignore"];
    n2 -> n3;
  }
  n1 -> n2 [style=dashed, label="forward"];
}
"#;
        assert_eq!(super::render(&p), want);
    }
}
