//! `cargo run -p weir-examples --bin hello`
fn main() -> Result<(), weir_examples::ExampleError> {
    let rt = weir::engine::Runtime::new()?;
    let out = rt.block_on(weir_examples::hello::run())?;
    println!("{out:?}");
    Ok(())
}
