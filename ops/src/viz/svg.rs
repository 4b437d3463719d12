//! Draws a [`VizGraph`] as a standalone SVG document from its [`layout`]: one `<g class="node">`
//! per node, one `<path class="edge">` per edge, one `<rect class="island">` per group.

use super::layout::{GAP_X, Layout, NODE_H, NODE_W, layout};
use super::model::VizGraph;
use std::fmt::Write as _;

/// Renders `g` as an SVG document.
pub fn to_svg(g: &VizGraph) -> String {
    let l = layout(g);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">",
        w = l.width,
        h = l.height
    );
    s.push_str(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/></marker></defs>\n",
    );
    groups(&mut s, g, &l);
    for e in &g.edges {
        let (a, b) = (l.nodes[e.from], l.nodes[e.to]);
        let (x1, y1) = (a.x + NODE_W, a.y + NODE_H / 2.0);
        let (x2, y2) = (b.x, b.y + NODE_H / 2.0);
        let bend = (GAP_X / 2.0).max((x2 - x1).abs() / 3.0);
        let dash = if e.dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "<path class=\"edge\" data-from=\"{}\" data-to=\"{}\" d=\"M {x1} {y1} C {} {y1}, {} {y2}, {x2} {y2}\" fill=\"none\" stroke=\"#555\"{dash} marker-end=\"url(#arrow)\"/>",
            xml_escape(&g.nodes[e.from].id),
            xml_escape(&g.nodes[e.to].id),
            x1 + bend,
            x2 - bend
        );
        if let Some(label) = &e.label {
            let _ = writeln!(
                s,
                "<text class=\"edge-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
                (x1 + x2) / 2.0,
                (y1 + y2) / 2.0 - 4.0,
                xml_escape(label)
            );
        }
    }
    for (n, p) in g.nodes.iter().zip(&l.nodes) {
        let rx = if n.is_async { 2 } else { 14 };
        let _ = writeln!(
            s,
            "<g class=\"node\" id=\"{id}\"><title>{label}</title><rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"{rx}\" fill=\"#eef3fb\" stroke=\"#34495e\"/><text x=\"{tx}\" y=\"{ty}\" text-anchor=\"middle\" dominant-baseline=\"middle\">{short}</text></g>",
            id = xml_escape(&n.id),
            label = xml_escape(&n.label),
            x = p.x,
            y = p.y,
            tx = p.x + NODE_W / 2.0,
            ty = p.y + NODE_H / 2.0,
            short = xml_escape(&shorten(&n.label, 26)),
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One rectangle around the nodes of each group, its label above it.
fn groups(s: &mut String, g: &VizGraph, l: &Layout) {
    const PAD: f64 = 10.0;
    for (gi, grp) in g.groups.iter().enumerate() {
        let members: Vec<_> = g
            .nodes
            .iter()
            .zip(&l.nodes)
            .filter(|(n, _)| n.group == Some(gi))
            .map(|(_, p)| *p)
            .collect();
        if members.is_empty() {
            continue;
        }
        let x0 = members.iter().map(|p| p.x).fold(f64::INFINITY, f64::min) - PAD;
        let y0 = members.iter().map(|p| p.y).fold(f64::INFINITY, f64::min) - PAD;
        let x1 = members
            .iter()
            .map(|p| p.x)
            .fold(f64::NEG_INFINITY, f64::max)
            + NODE_W
            + PAD;
        let y1 = members
            .iter()
            .map(|p| p.y)
            .fold(f64::NEG_INFINITY, f64::max)
            + NODE_H
            + PAD;
        let _ = writeln!(
            s,
            "<g class=\"island\" id=\"{}\"><rect x=\"{x0}\" y=\"{y0}\" width=\"{}\" height=\"{}\" rx=\"6\" fill=\"none\" stroke=\"#9aa5b1\" stroke-dasharray=\"3 3\"/><text x=\"{}\" y=\"{}\" fill=\"#6b7785\" font-size=\"10\">{}</text></g>",
            xml_escape(&grp.id),
            x1 - x0,
            y1 - y0,
            x0 + 4.0,
            y0 - 3.0,
            xml_escape(&grp.label)
        );
    }
}

/// `s` cut to `max` characters with an ellipsis (the full text is in the node's `<title>`).
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Escapes the five XML special characters.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viz::model::{VizEdge, VizGroup, VizNode};

    #[test]
    fn every_node_edge_and_island_is_drawn_and_labels_are_escaped() {
        let g = VizGraph {
            nodes: vec![
                VizNode {
                    id: "n0".into(),
                    label: "range<u64> & \"more\"".into(),
                    group: Some(0),
                    is_async: false,
                },
                VizNode {
                    id: "n1".into(),
                    label: "sink".into(),
                    group: Some(0),
                    is_async: true,
                },
            ],
            groups: vec![VizGroup {
                id: "i0".into(),
                label: "island 0 (chain, x1)".into(),
            }],
            edges: vec![VizEdge {
                from: 0,
                to: 1,
                label: Some("hash".into()),
                dashed: true,
            }],
        };
        let svg = to_svg(&g);
        assert_eq!(svg.matches("<g class=\"node\"").count(), 2);
        assert_eq!(svg.matches("<path class=\"edge\"").count(), 1);
        assert_eq!(svg.matches("<g class=\"island\"").count(), 1);
        assert!(svg.contains("<title>range&lt;u64&gt; &amp; &quot;more&quot;</title>"));
        assert!(svg.contains("data-from=\"n0\" data-to=\"n1\""));
        assert!(svg.contains("stroke-dasharray=\"6 4\""));
        assert!(svg.contains(">hash</text>"));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
    }

    #[test]
    fn long_labels_are_shortened_on_the_node_only() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
