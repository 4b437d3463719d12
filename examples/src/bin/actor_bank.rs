//! `cargo run -p weir-examples --bin actor_bank`
fn main() -> Result<(), weir_examples::ExampleError> {
    let rt = weir::engine::Runtime::new()?;
    let out = rt.block_on(weir_examples::actors::bank::run())?;
    println!("{out:?}");
    Ok(())
}
