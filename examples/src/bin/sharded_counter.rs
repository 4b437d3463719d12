//! `cargo run -p weir-examples --bin sharded_counter`
fn main() -> Result<(), weir_examples::ExampleError> {
    let rt = weir::engine::Runtime::new()?;
    let (counts, made) = rt.block_on(weir_examples::sharded_counter::run(
        "the quick brown fox jumps over the lazy dog the end",
    ))?;
    for (w, n) in &counts {
        println!("{w:<6} {n}");
    }
    println!("entities made: {made}");
    Ok(())
}
