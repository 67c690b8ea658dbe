//! `ensi`: the command-line front end of the ensi secure-inference stack.

mod reference;
mod self_check;

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
    SelfCheck {
        /// Seed of the random test vectors (default: fresh from the operating system).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Run the plaintext reference forward pass of a BitNet b1.58 model (a checkpoint directory,
    /// or the embedded tiny model) and print the last position's logits and greedy next token.
    Reference(reference::ReferenceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::SelfCheck { seed } => {
            if self_check::run(seed) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Reference(args) => reference::run(&args),
    }
}
