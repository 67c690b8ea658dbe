//! `ensi`: the command-line front end of the ensi secure-inference stack.

mod bench;
mod bench_coeff;
mod bench_layer;
mod bench_lintrans;
mod bench_matmul;
mod bench_softmax;
mod calibrate;
mod ckks_cmd;
mod generate;
mod inspect;
mod keycache;
mod keygen;
mod reference;
mod roles;
mod run;
mod self_check;
mod sets;
mod synth;

use clap::{Parser, Subcommand};
use ensi_cli::{calibration, files};
use std::process::ExitCode;

/// Counts heap bytes for `--report-memory` (see [`ensi_cli::heap`]).
#[global_allocator]
static GLOBAL: ensi_cli::heap::Counting = ensi_cli::heap::Counting;

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
    /// The whole pipeline on ciphertexts: keys, the client's encrypted prompt, every decoder
    /// layer on the server, decryption, and a report against the plaintext reference.
    Run(run::RunArgs),
    /// Greedy generation on ciphertexts: the prompt's pass, then one round per new token
    /// through the server's encrypted key/value cache; reported against plaintext references.
    Generate(generate::GenerateArgs),
    /// Client: embed and encrypt a prompt for `ensi infer` (a ciphertext bundle file).
    Encrypt(roles::EncryptArgs),
    /// Server: run every layer on an encrypted prompt with the public evaluation keys only,
    /// and write the encrypted result.
    Infer(roles::InferArgs),
    /// Client: decrypt the server's result; the next token and the top logits.
    Decrypt(roles::DecryptArgs),
    /// Run the plaintext reference forward pass of a BitNet b1.58 model (a checkpoint directory,
    /// or the embedded tiny model) and print the last position's logits and greedy next token.
    Reference(reference::ReferenceArgs),
    /// Generate a client's keys into a directory: parameters, secret key (owner-only), public key
    /// and evaluation keys, streamed one at a time; reports the peak memory.
    Keygen(keygen::KeygenArgs),
    /// Raw CKKS vectors through files: the client encrypts and decrypts, the server bootstraps
    /// with the public keys only.
    #[command(subcommand)]
    Ckks(ckks_cmd::CkksCommand),
    /// Show what an ensi file is (object type, parameter set, levels, digits, the secret a key
    /// is under and its security verdict) without printing any secret.
    Inspect(inspect::InspectArgs),
    /// Calibrate every polynomial's interval and every bootstrap's bound of a model on sample
    /// prompts, per prompt length, and save them beside the model (`calibration.json`).
    Calibrate(calibrate::CalibrateArgs),
    /// Write a checkpoint directory in a real layout (2B-4T packed ternary or 1bitLLM latent)
    /// with random weights, for tests and demos of `run --checkpoint`.
    Synth(synth::SynthArgs),
    /// Benchmarks; each prints one JSON object (see bench/README.md).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Time the CKKS primitives at a parameter set (the same options and JSON schema as
    /// bench/openfhe_bench.py).
    Ckks(bench::CkksBenchArgs),
    /// One decoder layer of a real model's shape on ciphertexts against the plaintext layer:
    /// time and operations per step, bootstraps and their share, memory, precision.
    Layer(bench_layer::LayerBenchArgs),
    /// An encrypted activation times a weight matrix by four kernels at the same parameters:
    /// column-block BSGS with ternary and with dense weights, ENSI's column layout (signed
    /// sums) and NEXUS's plaintext-ciphertext product.
    Matmul(bench_matmul::MatmulBenchArgs),
    /// The coefficient-encoded ternary product fused with bootstrapping (products, packing,
    /// ModRaise, CoeffsToSlots, EvalMod) beside the slot plan's bootstrap and BSGS product.
    Coeff(bench_coeff::CoeffBenchArgs),
    /// Sigmoid attention weights against a homomorphic softmax on one head's n x n scores,
    /// bootstraps included, and each approximation's effect on the embedded model's logits.
    Softmax(bench_softmax::SoftmaxBenchArgs),
}

fn main() -> ExitCode {
    // The client's commands report their heap: count from the first allocation on (see
    // `ensi_cli::heap` for why the others do not count).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|c| c == "keygen" || c == "encrypt" || c == "decrypt")
    {
        ensi_cli::heap::enable();
    } else {
        // The server's and the benchmarks' commands keep freed pages for reuse (see
        // `ensi_cli::heap::keep_freed_pages`); the client's stay small and give memory back.
        ensi_cli::heap::keep_freed_pages();
    }
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
        Command::Run(args) => run::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Encrypt(args) => roles::run_encrypt(&args),
        Command::Infer(args) => roles::run_infer(&args),
        Command::Decrypt(args) => roles::run_decrypt(&args),
        Command::Bench(BenchCommand::Ckks(args)) => bench::run_ckks(&args),
        Command::Bench(BenchCommand::Layer(args)) => bench_layer::run_layer(&args),
        Command::Bench(BenchCommand::Matmul(args)) => bench_matmul::run_matmul(&args),
        Command::Bench(BenchCommand::Coeff(args)) => bench_coeff::run_coeff(&args),
        Command::Bench(BenchCommand::Softmax(args)) => bench_softmax::run_softmax(&args),
        Command::Keygen(args) => keygen::run(args),
        Command::Ckks(cmd) => ckks_cmd::run(&cmd),
        Command::Inspect(args) => inspect::run(&args),
        Command::Synth(args) => synth::run(&args),
        Command::Calibrate(args) => calibrate::run(&args),
    }
}
