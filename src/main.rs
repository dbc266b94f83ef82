//! `cpwatch`: the headless receiver and the command line.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
