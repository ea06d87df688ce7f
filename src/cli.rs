//! The command line: `run` (the default), `config check`. Arguments are parsed by clap into raw
//! structs, then each command loads what it needs.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_CONFIG_PATH};

/// Exit status for a bad command line or configuration (BSD `EX_USAGE`).
pub const EXIT_USAGE: i32 = 64;
/// Exit status for a failure while running.
pub const EXIT_FAILURE: i32 = 1;

/// dcv-proxy: answers domain-control validation at the edge, proxies the rest.
#[derive(Debug, Parser)]
#[command(name = "dcv-proxy", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, short = 'c', global = true, default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start serving (the default command).
    Run {
        /// Take over the listening sockets of a running instance (zero-downtime upgrade).
        #[arg(long)]
        upgrade: bool,
    },
    /// Work with the configuration file.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the configuration file and exit: 0 when valid, 64 with the reason when not.
    Check,
}

/// Runs the parsed command line; returns the process exit status.
pub fn main(cli: Cli) -> i32 {
    match cli.command.unwrap_or(Command::Run { upgrade: false }) {
        Command::Config {
            action: ConfigAction::Check,
        } => match Config::load(&cli.config) {
            Ok(config) => {
                println!(
                    "{}: ok ({} site(s), http {:?}, https {:?}, admin {})",
                    cli.config.display(),
                    config.sites.sites.len(),
                    config.http.listen,
                    config.https.listen,
                    config.admin.listen
                );
                0
            }
            Err(e) => {
                eprintln!("{e}");
                EXIT_USAGE
            }
        },
        Command::Run { upgrade } => {
            let config = match Config::load(&cli.config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return EXIT_USAGE;
                }
            };
            init_logging(&config.server.log_level);
            match crate::app::run(config, crate::app::RunOptions { upgrade }) {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("dcv-proxy: {e}");
                    EXIT_FAILURE
                }
            }
        }
    }
}

/// tracing to stderr; pingora's `log` records are bridged in by tracing-subscriber's
/// `tracing-log` feature.
fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
