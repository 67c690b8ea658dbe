//! `ensi synth`: writes a checkpoint directory in a real layout (bitnet-b1.58-2B-4T packed
//! ternary, or 1bitLLM latent weights) with random weights drawn like the embedded model's, at
//! a chosen size: what `ensi run --checkpoint` and the tests use to exercise real layouts
//! without downloading a model.

use clap::{Args, ValueEnum};
use ensi_bitnet::{
    Activation, Family, ModelConfig, ScaleConvention, random_model, save_checkpoint,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `ensi synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// The directory to write (`config.json` + `model.safetensors`); must not exist yet.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The checkpoint layout.
    #[arg(long, value_enum, default_value_t = SynthFamily::Bitnet)]
    family: SynthFamily,
    /// Hidden size (a multiple of the head dimension, 64).
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Number of decoder layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Seed of the weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Which real layout to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SynthFamily {
    /// microsoft/bitnet-b1.58-2B-4T: 2-bit packed ternary weights with a scale, GQA (4 query
    /// heads per KV head where possible), ReLU^2, intermediate ~2.7x hidden, tied embeddings.
    Bitnet,
    /// 1bitLLM/bitnet_b1_58: dense latent weights ternarized when loaded, SiLU, intermediate
    /// ~8/3 x hidden, separate LM head.
    Llama1bit,
}

/// The configuration of a synthetic checkpoint of `hidden` width (vocabulary 256: one token
/// per byte).
pub fn synth_config(
    family: SynthFamily,
    hidden: usize,
    layers: usize,
) -> Result<ModelConfig, String> {
    let hd = 64;
    if hidden == 0 || !hidden.is_multiple_of(hd) || layers == 0 {
        return Err(format!(
            "the hidden size must be a positive multiple of {hd}, with at least one layer"
        ));
    }
    let heads = hidden / hd;
    let round64 = |x: usize| x.div_ceil(64) * 64;
    Ok(match family {
        SynthFamily::Bitnet => ModelConfig {
            family: Family::Bitnet,
            vocab_size: 256,
            hidden_size: hidden,
            intermediate_size: round64(hidden * 27 / 10),
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: [4, 3, 2, 1]
                .into_iter()
                .find(|g| heads.is_multiple_of(*g))
                .map_or(heads, |g| heads / g),
            head_dim: hd,
            rms_norm_eps: 1e-5,
            rope_theta: 500_000.0,
            max_position_embeddings: 4096,
            hidden_act: Activation::ReluSquared,
            tie_word_embeddings: true,
            weight_scale: ScaleConvention::Divide,
        },
        SynthFamily::Llama1bit => ModelConfig {
            family: Family::Llama1Bit,
            vocab_size: 256,
            hidden_size: hidden,
            intermediate_size: round64(hidden * 8 / 3),
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: heads,
            head_dim: hd,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            max_position_embeddings: 2048,
            hidden_act: Activation::Silu,
            tie_word_embeddings: false,
            weight_scale: ScaleConvention::Divide,
        },
    })
}

/// Runs `ensi synth`.
pub fn run(args: &SynthArgs) -> ExitCode {
    let go = || -> Result<(), String> {
        if args.out.exists() {
            return Err(format!(
                "{} exists; choose a new directory",
                args.out.display()
            ));
        }
        let cfg = synth_config(args.family, args.hidden, args.layers)?;
        let model = random_model(cfg, args.seed, args.family == SynthFamily::Llama1bit)
            .map_err(|e| e.to_string())?;
        // Written beside the target, then renamed: a failure leaves nothing half-written.
        let tmp = args
            .out
            .with_extension(format!("tmp-{}", std::process::id()));
        save_checkpoint(&model, &tmp).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &args.out).map_err(|e| e.to_string())?;
        let c = model.config();
        eprintln!(
            "ensi synth: {} ({:?}): hidden {}, intermediate {}, {} layers, {} heads, {} KV heads",
            args.out.display(),
            c.family,
            c.hidden_size,
            c.intermediate_size,
            c.num_hidden_layers,
            c.num_attention_heads,
            c.num_key_value_heads
        );
        Ok(())
    };
    match go() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ensi synth: {e}");
            ExitCode::FAILURE
        }
    }
}
