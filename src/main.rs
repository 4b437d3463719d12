//! The `weir` command-line tool (see `weir --help` and docs/cli.md).

fn main() -> std::process::ExitCode {
    weir::cli::app::main().into()
}
