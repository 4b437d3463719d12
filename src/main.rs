//! The `weir` command-line tool (see `weir --help` and docs/cli.md).

fn main() -> std::process::ExitCode {
    let exit = weir::cli::app::main();
    // The spans not yet exported over OTLP (when configured) go before the process ends.
    weir_ops::logging::shutdown();
    exit.into()
}
