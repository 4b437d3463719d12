//! `cargo run -p weir-examples --bin fan_out_fan_in`
fn main() -> Result<(), weir_examples::ExampleError> {
    let rt = weir::engine::Runtime::new()?;
    let out = rt.block_on(weir_examples::fan_out_fan_in::run())?;
    println!("{out:?}");
    Ok(())
}
