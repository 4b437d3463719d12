//! `cargo run -p weir-examples --bin word_count -- [parallelism]`
fn main() -> Result<(), weir_examples::ExampleError> {
    let par = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(2);
    let rt = weir::engine::Runtime::new()?;
    let lines = weir::demo::zipf_corpus(10_000, 10, 1_000, 7);
    let counts = rt.block_on(weir_examples::word_count::run(lines, par))?;
    let mut top = counts;
    top.sort_by_key(|e| std::cmp::Reverse(e.1));
    for (w, c) in top.iter().take(10) {
        println!("{w}\t{c}");
    }
    Ok(())
}
