fn main() -> std::process::ExitCode {
    midwatch::cli::main()
}
