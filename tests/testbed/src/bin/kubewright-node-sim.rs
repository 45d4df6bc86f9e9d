//! The node simulator, answering as the tool it is invoked as (`argv[0]`).

fn main() -> std::process::ExitCode {
    kubewright_testbed::sim::main()
}
