//! Prometheus text exposition of the runs of a process.

use weir_engine::RunView;

/// Renders the Prometheus text exposition of `runs`.
pub fn render(runs: &[RunView]) -> String {
    let mut s = String::new();
    for r in runs {
        s.push_str(&format!(
            "# run {} {}\n",
            r.id(),
            r.name().replace(['\n', '\\', '"'], "_")
        ));
    }
    s.push_str("# EOF\n");
    s
}
