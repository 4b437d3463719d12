//! `cargo run -p weir-examples --bin file_etl -- INPUT_DIR OUTPUT_DIR`: filters the CSV events
//! of `INPUT_DIR/*.csv` (`key,value,ts_ms`, a header line each) into part files.
fn main() -> Result<(), weir_examples::ExampleError> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: file_etl INPUT_DIR OUTPUT_DIR".into());
    };
    let rt = weir::engine::Runtime::new()?;
    let report = rt.block_on(weir_examples::file_etl::run(
        input.as_ref(),
        output.as_ref(),
        50,
        64 * 1024,
    ))?;
    for p in &report.parts {
        println!("{}", p.display());
    }
    for b in &report.bad_lines {
        eprintln!("skipped: {b}");
    }
    Ok(())
}
