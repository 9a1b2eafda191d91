fn main() -> std::process::ExitCode {
    ltx_serve::cli::main()
}
