//! Renderings of a graph without running it: the logical blueprint and the physical plan (fused
//! islands, channel edges, parallelism) as Mermaid, Graphviz DOT or a self-contained SVG.
//!
//! Used by `weir visualize` for Rust examples and by the Python extension for scripts run with
//! `WEIR_VISUALIZE` set, so both print the same text for the same graph.

mod layout;
mod model;
mod svg;

pub use layout::{Layout, Placed, layout};
pub use model::{VizEdge, VizGraph, VizGroup, VizNode};
pub use svg::to_svg;

use weir_engine::plan::PhysicalPlan;
use weir_graph::Module;

/// The text formats a graph renders to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A Mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
    /// A standalone SVG document (laid out here, no external tool).
    Svg,
}

impl Format {
    /// Parses `mermaid`, `dot` or `svg`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mermaid" => Some(Self::Mermaid),
            "dot" => Some(Self::Dot),
            "svg" => Some(Self::Svg),
            _ => None,
        }
    }

    /// The format's name as [`Format::parse`] accepts it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mermaid => "mermaid",
            Self::Dot => "dot",
            Self::Svg => "svg",
        }
    }
}

/// Renders the logical blueprint `module` in `format`.
pub fn render_logical(module: &Module, format: Format) -> String {
    match format {
        Format::Mermaid => module.to_mermaid(),
        Format::Dot => module.to_dot(),
        Format::Svg => to_svg(&VizGraph::logical(module)),
    }
}

/// Renders the physical plan `plan` in `format`.
pub fn render_physical(plan: &PhysicalPlan, format: Format) -> String {
    match format {
        Format::Mermaid => plan.to_mermaid(),
        Format::Dot => VizGraph::physical(plan).to_dot(),
        Format::Svg => to_svg(&VizGraph::physical(plan)),
    }
}
