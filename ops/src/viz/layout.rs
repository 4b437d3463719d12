//! A layered (Sugiyama-style) left-to-right layout: each node's layer is its longest path from a
//! source, nodes within a layer are ordered by the barycentre of their neighbours, and every
//! node gets a fixed-size box on a grid.

use super::model::VizGraph;

/// Width of a node box, in SVG units.
pub const NODE_W: f64 = 170.0;
/// Height of a node box.
pub const NODE_H: f64 = 40.0;
/// Horizontal gap between layers.
pub const GAP_X: f64 = 60.0;
/// Vertical gap between the nodes of a layer.
pub const GAP_Y: f64 = 36.0;
/// Margin around the drawing.
pub const MARGIN: f64 = 30.0;

/// Where one node is drawn: the top-left corner of its box, its layer and rank in the layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Layer (column), 0 for sources.
    pub layer: usize,
    /// Position in its layer, top first.
    pub rank: usize,
}

/// The positions of every node and the size of the drawing.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// One entry per node of the graph, in node order.
    pub nodes: Vec<Placed>,
    /// Total width.
    pub width: f64,
    /// Total height.
    pub height: f64,
}

/// The layer of every node: the longest path to it from a node without inputs. Edges closing a
/// cycle are ignored (the nodes of a cycle left over are placed one layer after the others).
fn layers(g: &VizGraph) -> Vec<usize> {
    let n = g.nodes.len();
    let mut indeg = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for e in &g.edges {
        if e.from != e.to {
            indeg[e.to] += 1;
            out[e.from].push(e.to);
        }
    }
    let mut layer = vec![0usize; n];
    let mut done = vec![false; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut next = 0;
    while next < ready.len() {
        let v = ready[next];
        next += 1;
        done[v] = true;
        for &w in &out[v] {
            layer[w] = layer[w].max(layer[v] + 1);
            indeg[w] -= 1;
            if indeg[w] == 0 {
                ready.push(w);
            }
        }
    }
    let after = (0..n)
        .filter(|&i| done[i])
        .map(|i| layer[i] + 1)
        .max()
        .unwrap_or(0);
    for (i, d) in done.iter().enumerate() {
        if !d {
            layer[i] = layer[i].max(after);
        }
    }
    layer
}

/// Lays `g` out left to right.
pub fn layout(g: &VizGraph) -> Layout {
    let layer = layers(g);
    let depth = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut cols: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (i, &l) in layer.iter().enumerate() {
        cols[l].push(i);
    }
    // Two sweeps of barycentre ordering against the previous layer.
    let mut rank = vec![0f64; g.nodes.len()];
    for col in &cols {
        for (r, &v) in col.iter().enumerate() {
            rank[v] = r as f64;
        }
    }
    for _ in 0..2 {
        for col in cols.iter_mut().skip(1) {
            let mut keyed: Vec<(f64, usize)> = col
                .iter()
                .map(|&v| {
                    let preds: Vec<f64> = g
                        .edges
                        .iter()
                        .filter(|e| e.to == v && layer[e.from] < layer[v])
                        .map(|e| rank[e.from])
                        .collect();
                    let key = if preds.is_empty() {
                        rank[v]
                    } else {
                        preds.iter().sum::<f64>() / preds.len() as f64
                    };
                    (key, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            *col = keyed.into_iter().map(|(_, v)| v).collect();
            for (r, &v) in col.iter().enumerate() {
                rank[v] = r as f64;
            }
        }
    }
    let tallest = cols.iter().map(Vec::len).max().unwrap_or(0);
    let col_h = |k: usize| k as f64 * NODE_H + k.saturating_sub(1) as f64 * GAP_Y;
    let height = col_h(tallest) + 2.0 * MARGIN;
    let mut nodes = vec![
        Placed {
            x: 0.0,
            y: 0.0,
            layer: 0,
            rank: 0
        };
        g.nodes.len()
    ];
    for (l, col) in cols.iter().enumerate() {
        // Each column is centred vertically.
        let top = MARGIN + (col_h(tallest) - col_h(col.len())) / 2.0;
        for (r, &v) in col.iter().enumerate() {
            nodes[v] = Placed {
                x: MARGIN + l as f64 * (NODE_W + GAP_X),
                y: top + r as f64 * (NODE_H + GAP_Y),
                layer: l,
                rank: r,
            };
        }
    }
    let width = depth as f64 * NODE_W + depth.saturating_sub(1) as f64 * GAP_X + 2.0 * MARGIN;
    Layout {
        nodes,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viz::model::{VizEdge, VizNode};

    fn graph(n: usize, edges: &[(usize, usize)]) -> VizGraph {
        VizGraph {
            nodes: (0..n)
                .map(|i| VizNode {
                    id: format!("n{i}"),
                    label: format!("s{i}"),
                    group: None,
                    is_async: false,
                })
                .collect(),
            groups: Vec::new(),
            edges: edges
                .iter()
                .map(|&(from, to)| VizEdge {
                    from,
                    to,
                    label: None,
                    dashed: false,
                })
                .collect(),
        }
    }

    #[test]
    fn a_chain_is_one_row_of_increasing_layers() {
        let l = layout(&graph(3, &[(0, 1), (1, 2)]));
        let got: Vec<(usize, usize, f64, f64)> = l
            .nodes
            .iter()
            .map(|p| (p.layer, p.rank, p.x, p.y))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, MARGIN, MARGIN),
                (1, 0, MARGIN + NODE_W + GAP_X, MARGIN),
                (2, 0, MARGIN + 2.0 * (NODE_W + GAP_X), MARGIN)
            ]
        );
        assert_eq!(l.width, 3.0 * NODE_W + 2.0 * GAP_X + 2.0 * MARGIN);
        assert_eq!(l.height, NODE_H + 2.0 * MARGIN);
    }

    #[test]
    fn a_diamond_puts_the_join_after_the_longest_branch() {
        // 0 -> 1 -> 2 -> 4 and 0 -> 3 -> 4: node 4 is on layer 3, 3 shares layer 1 with 1.
        let l = layout(&graph(5, &[(0, 1), (1, 2), (2, 4), (0, 3), (3, 4)]));
        let layers: Vec<usize> = l.nodes.iter().map(|p| p.layer).collect();
        assert_eq!(layers, vec![0, 1, 2, 1, 3]);
        let mut ranks: Vec<usize> = [1, 3].iter().map(|&i| l.nodes[i].rank).collect();
        ranks.sort_unstable();
        assert_eq!(ranks, vec![0, 1]);
        assert_eq!(l.height, 2.0 * NODE_H + GAP_Y + 2.0 * MARGIN);
    }

    #[test]
    fn crossing_edges_are_uncrossed_by_barycentre() {
        // Layer 0: 0, 1; layer 1: 2 (fed by 1), 3 (fed by 0): ordered 3 above 2.
        let l = layout(&graph(4, &[(1, 2), (0, 3)]));
        assert_eq!((l.nodes[3].layer, l.nodes[3].rank), (1, 0));
        assert_eq!((l.nodes[2].layer, l.nodes[2].rank), (1, 1));
    }

    #[test]
    fn a_cycle_still_places_every_node() {
        let l = layout(&graph(3, &[(0, 1), (1, 2), (2, 1)]));
        let layers: Vec<usize> = l.nodes.iter().map(|p| p.layer).collect();
        assert_eq!(layers, vec![0, 1, 1]);
        assert_eq!(l.nodes[1].rank + l.nodes[2].rank, 1);
    }

    #[test]
    fn an_empty_graph_is_just_the_margin() {
        let l = layout(&graph(0, &[]));
        assert!(l.nodes.is_empty());
        assert_eq!((l.width, l.height), (2.0 * MARGIN, 2.0 * MARGIN));
    }
}
