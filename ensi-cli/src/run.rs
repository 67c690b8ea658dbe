//! `ensi run`: the whole pipeline in one process on the embedded model (or a checkpoint): key
//! generation, the client's encryption of the prompt's embeddings, every decoder layer and the
//! final norm on ciphertexts (the column layout of `ensi-nn`), the LM head on either side,
//! decryption, and a report against the plaintext reference (sigmoid attention, activation
//! quantization off, exact functions).
//!
//! Every polynomial's interval is calibrated on the reference traces of fixed sample prompts,
//! never on the user's prompt (the server would not see it); the report says whether the
//! prompt's own values stayed inside the calibrated intervals.

use clap::{Args, ValueEnum};
use ensi_bitnet::{
    AttentionKind, ForwardOptions, LoadOptions, Model, embedded_model, load_checkpoint,
};
use ensi_ckks::{
    BootstrapKeys, BootstrapParametersLiteral, Bootstrapper, CkksContext, EvaluationKeySet,
    KeyRequest, Parameters, ParametersLiteral, SecretKey,
};
use ensi_nn::attention::attention_rotations;
use ensi_nn::column::ColumnMatrix;
use ensi_nn::decoder::{
    Progress, calibrate_model, embed, encrypted_forward, layer_level_plan, lm_head,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng, TryRngCore};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `ensi run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Checkpoint directory (config.json + model.safetensors); default: the embedded model.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Input token ids, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "prompt")]
    tokens: Option<Vec<u32>>,
    /// Input text, one token per byte (the embedded model's vocabulary). Default "ENSI run".
    #[arg(long)]
    prompt: Option<String>,
    /// A small, INSECURE demo set (N = 2^11, minutes instead of hours). Without it the run uses
    /// the default 128-bit N = 2^16 set, which in the column layout takes hours.
    #[arg(long)]
    insecure_small: bool,
    /// Degree of the sigmoid polynomial (ENSI uses 16).
    #[arg(long, default_value_t = 31)]
    sigmoid_degree: usize,
    /// Degree of the FFN activation polynomial.
    #[arg(long, default_value_t = 31)]
    act_degree: usize,
    /// Where the LM head runs: on the client after decrypting the final hidden states (tied
    /// embeddings, open weights), or on the server with plaintext weights.
    #[arg(long, value_enum, default_value_t = HeadSide::Client)]
    lm_head: HeadSide,
    /// Seed for reproducible (insecure) keys; default: the operating system.
    #[arg(long)]
    seed: Option<u64>,
    /// Print a JSON report on standard output.
    #[arg(long)]
    json: bool,
    /// Fail (non-zero exit) unless the top-1 token agrees with the reference and the largest
    /// logit error is within 1% of the largest logit magnitude.
    #[arg(long)]
    check: bool,
}

/// Where the LM head runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HeadSide {
    /// The client applies the head to the decrypted final hidden states.
    Client,
    /// The server applies the head to the encrypted final hidden states.
    Server,
}

/// The calibration prompts: fixed sample texts (bytes as tokens), never the user's prompt.
const CALIBRATION_PROMPTS: [&str; 4] = [
    "The quick brown fox",
    "Hello, world! 123",
    "ENSI: secure BitNet",
    "abcdefghijklmnop",
];

/// Runs `ensi run`.
pub fn run(args: &RunArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ensi run: {e}");
            ExitCode::FAILURE
        }
    }
}

fn top_k(logits: &[f64], k: usize) -> Vec<(usize, f64)> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    idx.into_iter().take(k).map(|i| (i, logits[i])).collect()
}

fn run_inner(args: &RunArgs) -> Result<(), String> {
    let started = Instant::now();
    let model: Model = match &args.checkpoint {
        Some(dir) => load_checkpoint(dir, &LoadOptions::default()).map_err(|e| e.to_string())?,
        None => embedded_model().map_err(|e| e.to_string())?,
    };
    let cfg = model.config().clone();
    let tokens: Vec<u32> = match (&args.tokens, &args.prompt) {
        (Some(t), _) => t.clone(),
        (None, Some(p)) => p.bytes().map(u32::from).collect(),
        (None, None) => "ENSI run".bytes().map(u32::from).collect(),
    };
    if tokens.is_empty() {
        return Err("the prompt is empty".into());
    }
    if let Some(&t) = tokens.iter().find(|&&t| t as usize >= cfg.vocab_size) {
        return Err(format!(
            "token {t} is outside the vocabulary of {}",
            cfg.vocab_size
        ));
    }
    let n = tokens.len();
    let options = ForwardOptions::new(AttentionKind::Sigmoid, false);
    // Calibration on the sample prompts only.
    let samples = CALIBRATION_PROMPTS
        .iter()
        .map(|p| {
            let t: Vec<u32> = p
                .bytes()
                .map(u32::from)
                .filter(|&t| (t as usize) < cfg.vocab_size)
                .collect();
            model.forward::<f64>(&t, &options)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let plan = calibrate_model(
        &samples.iter().collect::<Vec<_>>(),
        &cfg,
        0.25,
        args.sigmoid_degree,
        args.act_degree,
    );
    // Parameters and keys.
    let (params, literal) = if args.insecure_small {
        let mut lit = ParametersLiteral::insecure_bootstrap_test(11, 10, 9);
        lit.dnum = 8;
        let boot = BootstrapParametersLiteral {
            cts_level_budget: 2,
            stc_level_budget: 2,
            ..BootstrapParametersLiteral::default()
        };
        (
            Parameters::new_insecure(lit).map_err(|e| e.to_string())?,
            boot,
        )
    } else {
        eprintln!(
            "ensi run: 128-bit N = 2^16 set: the column layout bootstraps every column; expect \
             hours (use --insecure-small for a demo in minutes)"
        );
        (
            Parameters::new(ParametersLiteral::n16_bootstrappable()).map_err(|e| e.to_string())?,
            BootstrapParametersLiteral::default(),
        )
    };
    let ctx = CkksContext::new(params).map_err(|e| e.to_string())?;
    let mut rng = match args.seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s),
        None => {
            let mut seed = [0u8; 32];
            OsRng
                .try_fill_bytes(&mut seed)
                .map_err(|e| format!("operating-system randomness: {e}"))?;
            ChaCha20Rng::from_seed(seed)
        }
    };
    let err = |e: ensi_ckks::CkksError| e.to_string();
    eprintln!(
        "ensi run: {} tokens, {} layers, hidden {}, N = 2^{} ({}); generating keys",
        n,
        cfg.num_hidden_layers,
        cfg.hidden_size,
        ctx.params().log_n(),
        if args.insecure_small {
            "INSECURE demo set"
        } else {
            "128-bit"
        }
    );
    let clock = Instant::now();
    let sk = SecretKey::generate(&ctx, &mut rng).map_err(err)?;
    let mut keys = BootstrapKeys::generate(&ctx, &sk, &literal, &mut rng).map_err(err)?;
    let extra = EvaluationKeySet::generate(
        &ctx,
        &sk,
        &KeyRequest::new().with_rotations(&ctx, &attention_rotations(n)),
        &mut rng,
    )
    .map_err(err)?;
    for key in extra.into_keys() {
        keys.insert(key);
    }
    let bts = Bootstrapper::new(&ctx, literal, keys).map_err(err)?;
    let keygen_s = clock.elapsed().as_secs_f64();
    // The client encrypts the embeddings.
    let clock = Instant::now();
    let x = ColumnMatrix::encrypt(
        &ctx,
        &sk,
        &embed(&model, &tokens).ok_or("token outside the embedding table")?,
        n,
        bts.output_level(),
        ctx.params().default_scale(),
        &mut rng,
    )
    .map_err(err)?;
    let encrypt_s = clock.elapsed().as_secs_f64();
    // The server runs the layers.
    let eval = bts.evaluator();
    let before = eval.op_count();
    let clock = Instant::now();
    let mut layer_s: Vec<f64> = Vec::new();
    let mut last = Instant::now();
    let hidden = encrypted_forward(&bts, &model, &x, &plan, &mut |p| {
        if !matches!(p, Progress::Layer { index: 0, .. }) {
            layer_s.push(last.elapsed().as_secs_f64());
        }
        last = Instant::now();
        match p {
            Progress::Layer { index, count } => eprintln!(
                "ensi run: layer {}/{count} ({:.0} s so far)",
                index + 1,
                clock.elapsed().as_secs_f64()
            ),
            Progress::FinalNorm => eprintln!(
                "ensi run: final norm ({:.0} s so far)",
                clock.elapsed().as_secs_f64()
            ),
        }
    })
    .map_err(err)?;
    let forward_s = clock.elapsed().as_secs_f64();
    let ops = eval.op_count() - before;
    // The LM head and decryption.
    let clock = Instant::now();
    let vocab = cfg.vocab_size;
    let logits: Vec<f64> = match args.lm_head {
        HeadSide::Client => {
            let h = hidden.decrypt(&ctx, &sk).map_err(err)?;
            let last_row = &h[(n - 1) * cfg.hidden_size..];
            let head = model.lm_head();
            (0..vocab)
                .map(|t| {
                    head[t * cfg.hidden_size..(t + 1) * cfg.hidden_size]
                        .iter()
                        .zip(last_row)
                        .map(|(&w, &v)| f64::from(w) * v)
                        .sum()
                })
                .collect()
        }
        HeadSide::Server => {
            let enc = lm_head(eval, &hidden, model.lm_head(), vocab).map_err(err)?;
            let all = enc.decrypt(&ctx, &sk).map_err(err)?;
            all[(n - 1) * vocab..].to_vec()
        }
    };
    let head_s = clock.elapsed().as_secs_f64();
    // The reference.
    let reference = model
        .forward::<f64>(&tokens, &options)
        .map_err(|e| e.to_string())?;
    let expect = reference.last_logits();
    let outside = outside_calibration(&reference, &plan, cfg.rms_norm_eps);
    if outside > 0 {
        eprintln!(
            "ensi run: {outside} values of this prompt fell outside the calibrated intervals \
             (the polynomials are accurate only inside them)"
        );
    }
    let max_logit = expect.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let max_err = expect
        .iter()
        .zip(&logits)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    let got_top = top_k(&logits, 5);
    let ref_top = top_k(expect, 5);
    let agree = got_top[0].0 == ref_top[0].0;
    let total_s = started.elapsed().as_secs_f64();
    eprintln!(
        "ensi run: next token {} ({:?}), reference {} ; top-1 {}",
        got_top[0].0,
        char::from_u32(got_top[0].0 as u32)
            .filter(|c| !c.is_control())
            .unwrap_or('?'),
        ref_top[0].0,
        if agree { "agrees" } else { "DIFFERS" }
    );
    eprintln!("ensi run: top-5 encrypted vs reference:");
    for (g, r) in got_top.iter().zip(&ref_top) {
        eprintln!(
            "  {:>4} {:>10.5}   |   {:>4} {:>10.5} (encrypted value there {:.5})",
            g.0, g.1, r.0, r.1, logits[r.0]
        );
    }
    eprintln!(
        "ensi run: max |logit error| {max_err:.3e} = {:.3}% of the largest logit; keys {keygen_s:.1} s, \
         encrypt {encrypt_s:.1} s, layers {forward_s:.1} s ({} bootstraps, {} key switches), \
         head + decrypt {head_s:.1} s, total {total_s:.1} s",
        100.0 * max_err / max_logit,
        ops.bootstrap,
        ops.key_switches()
    );
    let within = max_err <= 0.01 * max_logit;
    let level_plan =
        layer_level_plan(&bts, bts.output_level(), &cfg, &plan.layers[0]).map_err(err)?;
    if args.json {
        println!(
            "{}",
            json!({
                "tokens": tokens,
                "params": {"log_n": ctx.params().log_n(), "secure_128": !args.insecure_small},
                "next_token": got_top[0].0,
                "reference_next_token": ref_top[0].0,
                "top1_agrees": agree,
                "top5": got_top.iter().map(|(i, v)| json!([i, v])).collect::<Vec<_>>(),
                "reference_top5": ref_top.iter().map(|(i, v)| json!([i, v])).collect::<Vec<_>>(),
                "max_abs_logit_error": max_err,
                "max_rel_logit_error": max_err / max_logit,
                "within_1_percent": within,
                "values_outside_calibration": outside,
                "lm_head": format!("{:?}", args.lm_head).to_lowercase(),
                "sigmoid_degree": args.sigmoid_degree,
                "layer_level_plan": level_plan
                    .iter()
                    .map(|(step, level)| json!({"step": step, "level": level}))
                    .collect::<Vec<_>>(),
                "times_s": {
                    "keygen": keygen_s, "encrypt": encrypt_s, "layers": forward_s,
                    "per_layer": layer_s, "head_and_decrypt": head_s, "total": total_s,
                },
                "ops": {
                    "bootstrap": ops.bootstrap, "key_switches": ops.key_switches(),
                    "tensor": ops.tensor, "plain_mul": ops.plain_mul, "const_mul": ops.const_mul,
                    "add": ops.add, "rescale": ops.rescale,
                },
            })
        );
    }
    if args.check && !(agree && within) {
        return Err("--check: the encrypted result does not agree with the reference".into());
    }
    Ok(())
}

/// How many of the prompt's own values (from the client's reference trace) fall outside the
/// intervals the polynomials were calibrated for: attention scores, FFN gates and the norm
/// statistics.
fn outside_calibration(
    trace: &ensi_bitnet::Trace<f64>,
    plan: &ensi_nn::decoder::ModelPlan,
    eps: f64,
) -> usize {
    let mut count = 0;
    for (layer, p) in trace.layers.iter().zip(&plan.layers) {
        let scores = layer.scores.iter().flat_map(|s| s.as_slice().iter());
        count += scores
            .filter(|&&v| v < p.scores.lo || v > p.scores.hi)
            .count();
        let gates = layer.gate.as_slice().iter();
        count += gates.filter(|&&v| v < p.gate.lo || v > p.gate.hi).count();
        let inputs = [
            &layer.input,
            &layer.attn_output,
            &layer.attn_residual,
            &layer.ffn_act,
        ];
        for (m, norm) in inputs.iter().zip(&p.norms) {
            for r in 0..m.rows() {
                let row = m.row(r);
                let v = row.iter().map(|x| x * x).sum::<f64>() / row.len() as f64 + eps;
                if v < norm.lo || v > norm.hi {
                    count += 1;
                }
            }
        }
    }
    count
}
