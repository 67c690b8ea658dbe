//! `ensi`: the command-line front end of the ensi secure-inference stack.

mod reference;

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
    /// Run the plaintext reference forward pass of a BitNet b1.58 model (a checkpoint directory,
    /// or the embedded tiny model) and print the last position's logits and greedy next token.
    Reference(reference::ReferenceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::SelfCheck => {
            println!("ensi self-check: nothing to check yet");
            ExitCode::SUCCESS
        }
        Command::Reference(args) => reference::run(&args),
    }
}
