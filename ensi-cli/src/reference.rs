//! `ensi reference`: the plaintext reference forward pass of `ensi-bitnet` on a checkpoint
//! directory or on the embedded tiny model.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use ensi_bitnet::{
    AttentionKind, Float, ForwardOptions, LoadOptions, Model, ScaleConvention, Trace,
    embedded_model, load_checkpoint,
};
use serde_json::json;

/// Arguments of `ensi reference`.
#[derive(Args, Debug)]
pub struct ReferenceArgs {
    /// Checkpoint directory (config.json + model.safetensors); default: the embedded model.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Input token ids, comma-separated (e.g. 1,2,3).
    #[arg(long, value_delimiter = ',', num_args = 1.., required = true)]
    tokens: Vec<u32>,
    /// Attention: softmax (as trained) or sigmoid(QK^T/sqrt(d) - ln n) (as ENSI).
    #[arg(long, value_enum, default_value_t = AttentionArg::Softmax)]
    attention: AttentionArg,
    /// Per-token int8 activation quantization before every BitLinear.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    act_quant: Switch,
    /// Absmean ternarization of latent (float) checkpoint weights; off runs them at full
    /// precision. Packed checkpoints and the embedded model are ternary either way.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    weight_quant: Switch,
    /// Floating-point precision of the forward pass.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    /// How a packed checkpoint's weight_scale applies (default: from config.json, else divide).
    #[arg(long, value_enum)]
    weight_scale: Option<ScaleArg>,
    /// Also decode this many tokens greedily, both by recomputing the whole sequence each step
    /// and as a key/value cache computes them (earlier rows kept as computed; they differ
    /// under sigmoid attention, whose bias depends on the length). In f64.
    #[arg(long, value_name = "K")]
    generate: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AttentionArg {
    Softmax,
    Sigmoid,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Precision {
    F32,
    F64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScaleArg {
    Divide,
    Multiply,
}

fn report<F: Float>(model: &Model, source: &str, args: &ReferenceArgs, trace: &Trace<F>) {
    let c = model.config();
    let logits = trace.last_logits();
    let next = trace.next_token();
    let position = trace.tokens.len() - 1;
    if args.json {
        let out = json!({
            "model": source,
            "family": c.family.name(),
            "precision": F::NAME,
            "attention": trace.options.attention.name(),
            "act_quant": trace.options.act_quant,
            "weight_quant": trace.options.weight_quant,
            "tokens": trace.tokens,
            "position": position,
            "next_token": next,
            "logits": logits.iter().map(|v| v.to_f64()).collect::<Vec<f64>>(),
        });
        println!("{out}");
        return;
    }
    println!(
        "model: {source} ({}, {} layers, hidden {}, vocab {})",
        c.family.name(),
        c.num_hidden_layers,
        c.hidden_size,
        c.vocab_size
    );
    println!(
        "tokens: {:?}; attention: {}; act-quant: {}; precision: {}",
        trace.tokens,
        trace.options.attention.name(),
        if trace.options.act_quant { "on" } else { "off" },
        F::NAME
    );
    println!("greedy next token: {next}");
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| {
        logits[b]
            .partial_cmp(&logits[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let top: Vec<String> = order
        .iter()
        .take(5)
        .map(|&i| format!("{i}: {:.6}", logits[i]))
        .collect();
    println!("top 5 logits: {}", top.join(", "));
    println!("logits at position {position} ({} values):", logits.len());
    for (i, v) in logits.iter().enumerate() {
        println!("{i}\t{v}");
    }
}

fn run_inner(args: &ReferenceArgs) -> Result<(), ensi_bitnet::Error> {
    let (model, source) = match &args.checkpoint {
        Some(dir) => {
            let options = LoadOptions {
                weight_scale: args.weight_scale.map(|s| match s {
                    ScaleArg::Divide => ScaleConvention::Divide,
                    ScaleArg::Multiply => ScaleConvention::Multiply,
                }),
                weight_quant: args.weight_quant == Switch::On,
                ..LoadOptions::default()
            };
            (load_checkpoint(dir, &options)?, dir.display().to_string())
        }
        None => (embedded_model()?, "embedded".to_string()),
    };
    let options = ForwardOptions {
        attention: match args.attention {
            AttentionArg::Softmax => AttentionKind::Softmax,
            AttentionArg::Sigmoid => AttentionKind::Sigmoid,
        },
        act_quant: args.act_quant == Switch::On,
        weight_quant: args.weight_quant == Switch::On,
    };
    if let Some(k) = args.generate {
        let recomputed = ensi_bitnet::generate_greedy::<f64>(&model, &args.tokens, k, &options)?;
        let (cached, logits) =
            ensi_bitnet::generate_greedy_cached::<f64>(&model, &args.tokens, k, &options)?;
        if args.json {
            println!(
                "{}",
                json!({
                    "model": source,
                    "tokens": args.tokens,
                    "attention": options.attention.name(),
                    "act_quant": options.act_quant,
                    "generated": recomputed,
                    "generated_cached": cached,
                    "cached_logits": logits,
                })
            );
        } else {
            println!("greedy, recomputing the sequence: {recomputed:?}");
            println!("greedy, through a key/value cache: {cached:?}");
        }
        return Ok(());
    }
    match args.precision {
        Precision::F32 => report(
            &model,
            &source,
            args,
            &model.forward::<f32>(&args.tokens, &options)?,
        ),
        Precision::F64 => report(
            &model,
            &source,
            args,
            &model.forward::<f64>(&args.tokens, &options)?,
        ),
    }
    Ok(())
}

/// Runs `ensi reference`; errors are printed on stderr with a non-zero exit status.
pub fn run(args: &ReferenceArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ensi reference: error: {e}");
            ExitCode::FAILURE
        }
    }
}
