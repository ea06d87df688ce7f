//! The `dcv-proxy` binary: parse the command line, run it, exit with its status.

use clap::Parser;

fn main() {
    let cli = dcv_proxy::cli::Cli::parse();
    std::process::exit(dcv_proxy::cli::main(cli));
}
