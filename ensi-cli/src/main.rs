//! `ensi`: the command-line front end of the ensi secure-inference stack.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Non-interactive secure inference of BitNet b1.58 models under CKKS.
#[derive(Parser)]
#[command(name = "ensi", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify the arithmetic foundations against independent references and print what was checked.
    SelfCheck,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::SelfCheck => {
            println!("ensi self-check: nothing to check yet");
            ExitCode::SUCCESS
        }
    }
}
