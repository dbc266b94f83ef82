fn main() -> std::process::ExitCode {
    cpwatch_desktop::main()
}
