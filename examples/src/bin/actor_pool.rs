//! `cargo run -p weir-examples --bin actor_pool`
fn main() -> Result<(), weir_examples::ExampleError> {
    let rt = weir::engine::Runtime::new()?;
    let out = rt.block_on(weir_examples::actors::pool::run(3, 9))?;
    println!("{out:?}");
    Ok(())
}
