//! `octoctl`: Octo from the command line (see [`octo_tools::ctl`]).

fn main() -> std::process::ExitCode {
    octo_tools::ctl::main()
}
