//! `cargo run -p weir-examples --bin persistent_account`
fn main() -> Result<(), weir_examples::ExampleError> {
    let rt = weir::engine::Runtime::new()?;
    let (first, second) = rt.block_on(weir_examples::persistent_account::run())?;
    println!("first run:");
    for r in first {
        println!("  {r}");
    }
    println!("second run (recovered from the journal):");
    for r in second {
        println!("  {r}");
    }
    Ok(())
}
