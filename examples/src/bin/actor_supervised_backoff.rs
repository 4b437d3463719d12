//! `cargo run -p weir-examples --bin actor_supervised_backoff`
fn main() -> Result<(), weir_examples::ExampleError> {
    let rt = weir::engine::Runtime::new()?;
    let out = rt.block_on(weir_examples::actors::supervised_backoff::run())?;
    println!("{out:?}");
    Ok(())
}
