//! `ensi run`: the whole pipeline in one process on the embedded model (or a checkpoint): key
//! generation, the client's encryption of the prompt's embeddings, every decoder layer and the
//! final norm on ciphertexts (the column-block layout of `ensi-nn` by default, or ENSI's
//! column layout), the LM head on either side, decryption, and a report against the plaintext
//! reference (sigmoid attention, activation quantization off, exact functions): the level and
//! time of every step, bootstraps, key switches and output precision per layer, and
//! bootstrapping's share of the time.
//!
//! Every polynomial's interval is calibrated on the reference traces of fixed sample prompts,
//! never on the user's prompt (the server would not see it): read from the calibration saved
//! beside the model (`ensi calibrate`; the embedded model ships its own) or computed at the
//! start. The report says whether the prompt's own values stayed inside the intervals.

use crate::calibration;
use crate::keycache;
use clap::{Args, ValueEnum};
use ensi_bitnet::{
    AttentionKind, ForwardOptions, LoadOptions, Model, embedded_model, load_checkpoint,
};
use ensi_ckks::{
    BootstrapParametersLiteral, Bootstrapper, CkksContext, Parameters, ParametersLiteral,
};
use ensi_nn::attention::attention_rotations;
use ensi_nn::block::ChunkedMatrix;
use ensi_nn::block_layer::{
    block_forward, block_level_plan, block_lm_head, block_rotations, pad_prompt,
};
use ensi_nn::column::ColumnMatrix;
use ensi_nn::decoder::{Progress, embed, encrypted_forward, layer_level_plan, lm_head};
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
    /// A small, INSECURE demo set (N = 2^13 for the column-block layout, 2^11 for the column
    /// layout). Without it the run uses the default 128-bit N = 2^16 set.
    #[arg(long)]
    insecure_small: bool,
    /// The layout of the encrypted activations: column-block (one ciphertext per activation,
    /// BSGS products; the default) or ENSI's column layout (one ciphertext per hidden
    /// dimension, additions only; hours at 128-bit).
    #[arg(long, value_enum, default_value_t = LayoutArg::Block)]
    layout: LayoutArg,
    /// Degree of the sigmoid polynomial (ENSI uses 16).
    #[arg(long, default_value_t = 31)]
    sigmoid_degree: usize,
    /// Degree of the FFN activation polynomial (63: ReLU^2's kink makes it the main error
    /// source; 63 is the most the level plan allows, at no extra bootstrap).
    #[arg(long, default_value_t = 63)]
    act_degree: usize,
    /// The sigmoid's input interval instead of the calibrated one, as `LO,HI` (ENSI uses a
    /// fixed `-10,11`).
    #[arg(long, allow_hyphen_values = true, value_name = "LO,HI")]
    sigmoid_interval: Option<String>,
    /// Where the LM head runs: on the client after decrypting the final hidden states (tied
    /// embeddings, open weights), or on the server with plaintext weights.
    #[arg(long, value_enum, default_value_t = HeadSide::Client)]
    lm_head: HeadSide,
    /// Seed for reproducible (insecure) keys; default: the operating system.
    #[arg(long)]
    seed: Option<u64>,
    /// A key directory: keys are generated and saved there on the first run (the secret key
    /// owner-only) and loaded on the next ones with the same parameter set; missing rotation
    /// keys are added. Without it, keys are generated in memory for this run only.
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
    /// Calibrate on the sample prompts now instead of reading the calibration saved beside
    /// the model (`ensi calibrate`).
    #[arg(long)]
    recalibrate: bool,
    /// Print a JSON report on standard output.
    #[arg(long)]
    json: bool,
    /// Fail (non-zero exit) unless the top-1 token agrees with the reference and the largest
    /// logit error is within 1% of the largest logit magnitude.
    #[arg(long)]
    check: bool,
    /// Trade time for memory: Galois keys compacted (their uniform halves regenerated from the
    /// seed at each rotation) and cut to the levels they are used at, bootstrapping's diagonals
    /// encoded per call, EvalMod's halves in sequence.
    #[arg(long)]
    low_memory: bool,
}

/// The layout of the encrypted activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// Slot = column * n_pad + token: one ciphertext per activation matrix.
    Block,
    /// One ciphertext per hidden dimension (ENSI).
    Column,
}

/// Where the LM head runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HeadSide {
    /// The client applies the head to the decrypted final hidden states.
    Client,
    /// The server applies the head to the encrypted final hidden states.
    Server,
}

/// The prompt's token ids: `--tokens`, or `--prompt` one token per byte, or "ENSI run";
/// refused when empty or outside the vocabulary.
pub fn prompt_tokens(
    tokens: Option<&[u32]>,
    prompt: Option<&str>,
    cfg: &ensi_bitnet::ModelConfig,
) -> Result<Vec<u32>, String> {
    let tokens: Vec<u32> = match (tokens, prompt) {
        (Some(t), _) => t.to_vec(),
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
    Ok(tokens)
}

/// The model of a run: a checkpoint directory, or the embedded model.
pub fn load_model(checkpoint: Option<&std::path::Path>) -> Result<Model, String> {
    match checkpoint {
        Some(dir) => load_checkpoint(dir, &LoadOptions::default()).map_err(|e| e.to_string()),
        None => embedded_model().map_err(|e| e.to_string()),
    }
}

/// The widest activation of the column-block layout for `rows` (padded) tokens: columns
/// rounded up to a power of two, times the rows. It must fit the slots of one ciphertext.
pub(crate) fn widest_block(
    cfg: &ensi_bitnet::ModelConfig,
    rows: usize,
    server_head: bool,
) -> usize {
    [
        cfg.hidden_size,
        cfg.num_attention_heads.next_power_of_two() * cfg.head_dim,
        cfg.intermediate_size,
        if server_head { cfg.vocab_size } else { 0 },
    ]
    .iter()
    .map(|c| c.next_power_of_two())
    .max()
    .unwrap_or(1)
    .saturating_mul(rows)
}

/// The smallest ring degree (at least 2^13) whose slots hold `widest` values.
pub(crate) fn block_log_n(widest: usize) -> u32 {
    (2 * widest).next_power_of_two().trailing_zeros().max(13)
}

/// The parameters of a demo run: the default 128-bit N = 2^16 set (`None`), or an INSECURE
/// set of ring degree `2^log_n` with 10 levels after bootstrapping.
pub(crate) fn demo_parameters(
    log_n: Option<u32>,
) -> Result<(Parameters, BootstrapParametersLiteral), String> {
    match log_n {
        Some(log_n) => {
            let mut lit = ParametersLiteral::insecure_bootstrap_test(log_n, 10, 9);
            lit.dnum = 8;
            let boot = BootstrapParametersLiteral {
                cts_level_budget: 2,
                stc_level_budget: 2,
                ..BootstrapParametersLiteral::default()
            };
            Ok((
                Parameters::new_insecure(lit).map_err(|e| e.to_string())?,
                boot,
            ))
        }
        None => Ok((
            Parameters::new(ParametersLiteral::n16_bootstrappable()).map_err(|e| e.to_string())?,
            BootstrapParametersLiteral::default(),
        )),
    }
}

/// A generator from `seed` (reproducible, insecure keys) or from the operating system.
pub(crate) fn seeded_rng(seed: Option<u64>) -> Result<ChaCha20Rng, String> {
    Ok(match seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s),
        None => {
            let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
            OsRng
                .try_fill_bytes(&mut bytes[..])
                .map_err(|e| format!("operating-system randomness: {e}"))?;
            ChaCha20Rng::from_seed(*bytes)
        }
    })
}

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

pub(crate) fn top_k(logits: &[f64], k: usize) -> Vec<(usize, f64)> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    idx.into_iter().take(k).map(|i| (i, logits[i])).collect()
}

fn run_inner(args: &RunArgs) -> Result<(), String> {
    let started = Instant::now();
    let model: Model = load_model(args.checkpoint.as_deref())?;
    let cfg = model.config().clone();
    let tokens = prompt_tokens(args.tokens.as_deref(), args.prompt.as_deref(), &cfg)?;
    let n = tokens.len();
    let block = args.layout == LayoutArg::Block;
    // The column-block layout runs the prompt padded to a power of two (its last token
    // repeated; causality keeps the real tokens' results), with the real prompt's bias.
    let run_len = if block { n.next_power_of_two() } else { n };
    let options = ForwardOptions::new(AttentionKind::Sigmoid, false);
    // Calibration: the plan for this prompt length from the file beside the model (the
    // embedded model ships its own), or computed now on the sample prompts.
    let (plan, calibration_source) = calibration::plan_for(
        &model,
        args.checkpoint.as_deref(),
        n,
        args.recalibrate,
        args.sigmoid_degree,
        args.act_degree,
    )?;
    let mut plan = plan;
    if let Some(text) = &args.sigmoid_interval {
        let iv: Vec<f64> = text
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("--sigmoid-interval {text}: give LO,HI"))?;
        match iv.as_slice() {
            [lo, hi] if lo.is_finite() && hi.is_finite() && lo < hi => {
                for l in &mut plan.layers {
                    l.scores = ensi_nn::decoder::Interval { lo: *lo, hi: *hi };
                }
            }
            _ => return Err("--sigmoid-interval needs LO,HI with LO < HI".into()),
        }
    }
    eprintln!("ensi run: calibration {calibration_source}");
    let widest = widest_block(&cfg, run_len, args.lm_head == HeadSide::Server);
    // Parameters and keys.
    let (params, literal) = if args.insecure_small {
        // The smallest ring (at least 2^13) whose slots hold the widest activation.
        demo_parameters(Some(if block { block_log_n(widest) } else { 11 }))?
    } else {
        if !block {
            eprintln!(
                "ensi run: 128-bit N = 2^16 set: the column layout bootstraps every column; \
                 expect hours (the default column-block layout takes minutes)"
            );
        }
        demo_parameters(None)?
    };
    let literal = BootstrapParametersLiteral {
        low_memory: args.low_memory,
        compact_keys: args.low_memory,
        ..literal
    };
    let ctx = CkksContext::new(params).map_err(|e| e.to_string())?;
    if block && widest > ctx.n() / 2 {
        eprintln!(
            "ensi run: the widest activation needs {widest} slots, N = 2^{} has {}: activations \
             are split over {} ciphertexts (column chunks)",
            ctx.params().log_n(),
            ctx.n() / 2,
            widest.div_ceil(ctx.n() / 2)
        );
    }
    let mut rng = seeded_rng(args.seed)?;
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
    let slots = ctx.n() / 2;
    let rotations = if block {
        block_rotations(&cfg, run_len, slots, args.lm_head == HeadSide::Server).map_err(err)?
    } else {
        attention_rotations(n)
    };
    let obtained = keycache::obtain(
        &ctx,
        &literal,
        &rotations,
        args.keys.as_deref(),
        args.insecure_small,
        args.seed.is_some(),
        &mut rng,
    )?;
    eprintln!("ensi run: keys {}", obtained.source);
    let (sk, keys, key_source) = (obtained.sk, obtained.keys, obtained.source);
    let bts = Bootstrapper::new(&ctx, literal, keys).map_err(err)?;
    let keygen_s = clock.elapsed().as_secs_f64();
    // The client encrypts the embeddings (the padded prompt in the column-block layout).
    let clock = Instant::now();
    let run_tokens = pad_prompt(&tokens);
    let run_tokens = if block { &run_tokens[..] } else { &tokens[..] };
    let embeddings = embed(&model, run_tokens).ok_or("token outside the embedding table")?;
    let (level, delta) = (bts.output_level(), ctx.params().default_scale());
    let x = if block {
        Activations::Block(
            ChunkedMatrix::encrypt(&ctx, &sk, &embeddings, run_len, level, delta, &mut rng)
                .map_err(err)?,
        )
    } else {
        Activations::Column(
            ColumnMatrix::encrypt(&ctx, &sk, &embeddings, n, level, delta, &mut rng)
                .map_err(err)?,
        )
    };
    let encrypt_s = clock.elapsed().as_secs_f64();
    // The reference of what the server computes (the column-block layout's padding rows are
    // copies of the last real row).
    let seen = model
        .forward::<f64>(&tokens, &options)
        .map_err(|e| e.to_string())?;
    // The server runs the layers.
    let eval = bts.evaluator();
    let before = eval.op_count();
    let clock = Instant::now();
    let mut layers: Vec<LayerReport> = Vec::new();
    let mut steps: Vec<(&'static str, f64)> = Vec::new();
    let mut last = Instant::now();
    let mut layer_ops = eval.op_count();
    let mut progress = |p: Progress| {
        let lap = last.elapsed().as_secs_f64();
        last = Instant::now();
        let close_layer = |layers: &mut Vec<LayerReport>, ops: &mut ensi_ckks::OpCount| {
            if let Some(l) = layers.last_mut() {
                let now = eval.op_count();
                let d = now - *ops;
                *ops = now;
                l.bootstraps = d.bootstrap;
                l.bootstrap_s = d.bootstrap_micros as f64 * 1e-6;
                l.key_switches = d.key_switches();
            }
        };
        match p {
            Progress::Layer { index, count } => {
                if let Some(l) = layers.last_mut() {
                    l.seconds += lap;
                }
                close_layer(&mut layers, &mut layer_ops);
                layers.push(LayerReport::default());
                eprintln!(
                    "ensi run: layer {}/{count} ({:.0} s so far)",
                    index + 1,
                    clock.elapsed().as_secs_f64()
                );
            }
            Progress::Step { name, level } => {
                if let Some(l) = layers.last_mut() {
                    l.seconds += lap;
                }
                match steps.iter_mut().find(|(s, _)| *s == name) {
                    Some((_, t)) => *t += lap,
                    None => steps.push((name, lap)),
                }
                eprintln!("ensi run:   {name:<38} level {level:>2}  {lap:>6.1} s");
            }
            Progress::FinalNorm => {
                if let Some(l) = layers.last_mut() {
                    l.seconds += lap;
                }
                close_layer(&mut layers, &mut layer_ops);
                eprintln!(
                    "ensi run: final norm ({:.0} s so far)",
                    clock.elapsed().as_secs_f64()
                );
            }
        }
    };
    // Per-layer precision: a diagnostic only this one-process demo can give (it holds the
    // secret key); a real server never decrypts.
    let mut layer_bits: Vec<f64> = Vec::new();
    let mut layer_output = |i: usize, out: &ChunkedMatrix| {
        if let (Ok(got), Some(r)) = (out.decrypt(&ctx, &sk), seen.layers.get(i)) {
            let m = &r.output;
            let e = &m.as_slice()[..n * m.cols()];
            let max = e.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            let err = e
                .iter()
                .zip(&got)
                .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
            layer_bits.push(-(err / max).log2());
        }
    };
    let hidden = match &x {
        Activations::Block(x) => Activations::Block(
            block_forward(&bts, &model, x, &plan, n, &mut progress, &mut layer_output)
                .map_err(err)?,
        ),
        Activations::Column(x) => Activations::Column(
            encrypted_forward(&bts, &model, x, &plan, &mut progress).map_err(err)?,
        ),
    };
    let forward_s = clock.elapsed().as_secs_f64();
    let ops = eval.op_count() - before;
    // The LM head and decryption.
    let clock = Instant::now();
    let vocab = cfg.vocab_size;
    let d = cfg.hidden_size;
    let head = model.lm_head();
    let logits: Vec<f64> = match (&hidden, args.lm_head) {
        (Activations::Block(h), HeadSide::Client) => {
            // The final norm's gain is applied by the client with the head.
            let h = h.decrypt(&ctx, &sk).map_err(err)?;
            head_of_normalized(&model, &h[(n - 1) * d..n * d])
        }
        (Activations::Block(h), HeadSide::Server) => {
            let enc = block_lm_head(eval, h, &model).map_err(err)?;
            let all = enc.decrypt(&ctx, &sk).map_err(err)?;
            all[(n - 1) * vocab..n * vocab].to_vec()
        }
        (Activations::Column(h), HeadSide::Client) => {
            let h = h.decrypt(&ctx, &sk).map_err(err)?;
            client_head(head, &h[(n - 1) * d..], vocab)
        }
        (Activations::Column(h), HeadSide::Server) => {
            let enc = lm_head(eval, h, head, vocab).map_err(err)?;
            let all = enc.decrypt(&ctx, &sk).map_err(err)?;
            all[(n - 1) * vocab..].to_vec()
        }
    };
    let head_s = clock.elapsed().as_secs_f64();
    // The reference.
    let expect = seen.last_logits();
    let outside_list = outside_calibration(&seen, &plan, cfg.rms_norm_eps);
    let outside: usize = outside_list.iter().map(|o| o.2).sum();
    if outside > 0 {
        eprintln!(
            "ensi run: {outside} values of this prompt fell outside the calibrated intervals \
             (the polynomials are accurate only inside them):"
        );
        for (layer, what, count, worst, (lo, hi)) in &outside_list {
            eprintln!(
                "  layer {}: {count} {what} values, the farthest {worst:.4} outside [{lo:.4}, {hi:.4}]",
                layer + 1
            );
        }
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
    for (i, l) in layers.iter().enumerate() {
        eprintln!(
            "ensi run: layer {}: {:.1} s, {} bootstraps ({:.1} s, {:.0}%), {} key switches{}",
            i + 1,
            l.seconds,
            l.bootstraps,
            l.bootstrap_s,
            100.0 * l.bootstrap_s / l.seconds.max(1e-9),
            l.key_switches,
            layer_bits
                .get(i)
                .map(|b| format!(", output precision {b:.1} bits"))
                .unwrap_or_default()
        );
    }
    if !steps.is_empty() {
        eprintln!("ensi run: time per step (all layers):");
        for (step, t) in &steps {
            eprintln!("  {step:<38} {t:>7.1} s");
        }
    }
    eprintln!(
        "ensi run: bootstrapping {:.1} s = {:.0}% of the layers' time",
        ops.bootstrap_micros as f64 * 1e-6,
        100.0 * ops.bootstrap_micros as f64 * 1e-6 / forward_s
    );
    let within = max_err <= 0.01 * max_logit;
    let level_plan = if block {
        block_level_plan(&bts, bts.output_level(), &cfg, &plan.layers[0], run_len)
            .map_err(err)?
            .0
    } else {
        layer_level_plan(&bts, bts.output_level(), &cfg, &plan.layers[0]).map_err(err)?
    };
    if args.json {
        println!(
            "{}",
            json!({
                "tokens": tokens,
                "params": {"log_n": ctx.params().log_n(), "secure_128": !args.insecure_small},
                "layout": format!("{:?}", args.layout).to_lowercase(),
                "calibration": calibration_source,
                "keys": key_source,
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
                "act_degree": args.act_degree,
                "sigmoid_interval": [plan.layers[0].scores.lo, plan.layers[0].scores.hi],
                "layer_level_plan": level_plan
                    .iter()
                    .map(|(step, level)| json!({"step": step, "level": level}))
                    .collect::<Vec<_>>(),
                "times_s": {
                    "keygen": keygen_s, "encrypt": encrypt_s, "layers": forward_s,
                    "head_and_decrypt": head_s, "total": total_s,
                    "bootstrapping": ops.bootstrap_micros as f64 * 1e-6,
                },
                "layers": layers.iter().enumerate().map(|(i, l)| json!({
                    "seconds": l.seconds, "bootstraps": l.bootstraps,
                    "bootstrap_seconds": l.bootstrap_s, "key_switches": l.key_switches,
                    "precision_bits": layer_bits.get(i),
                })).collect::<Vec<_>>(),
                "steps_s": steps.iter().map(|(s, t)| json!({"step": s, "seconds": t}))
                    .collect::<Vec<_>>(),
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

/// What one layer cost.
#[derive(Clone, Debug, Default)]
struct LayerReport {
    seconds: f64,
    bootstraps: usize,
    bootstrap_s: f64,
    key_switches: usize,
}

/// The encrypted activations in either layout.
enum Activations {
    Block(ChunkedMatrix),
    Column(ColumnMatrix),
}

/// The client-side LM head on a final hidden row normalized without the final gain (what the
/// column-block layers return): the gain, then the head.
pub(crate) fn head_of_normalized(model: &Model, row: &[f64]) -> Vec<f64> {
    let with_gain: Vec<f64> = row
        .iter()
        .zip(model.norm())
        .map(|(v, &g)| v * f64::from(g))
        .collect();
    client_head(model.lm_head(), &with_gain, model.config().vocab_size)
}

/// The client-side LM head on the last token's final hidden state (gain applied).
pub(crate) fn client_head(head: &[f32], last_row: &[f64], vocab: usize) -> Vec<f64> {
    let d = last_row.len();
    (0..vocab)
        .map(|t| {
            head[t * d..(t + 1) * d]
                .iter()
                .zip(last_row)
                .map(|(&w, &v)| f64::from(w) * v)
                .sum()
        })
        .collect()
}

/// Values outside a calibrated interval: `(layer, what, count, the farthest value, interval)`.
type Outside = (usize, &'static str, usize, f64, (f64, f64));

/// The prompt's own values (from the client's reference trace) that fall outside the
/// intervals the polynomials were calibrated for (attention scores, FFN gates and the norm
/// statistics), grouped by where.
fn outside_calibration(
    trace: &ensi_bitnet::Trace<f64>,
    plan: &ensi_nn::decoder::ModelPlan,
    eps: f64,
) -> Vec<Outside> {
    let mut found = Vec::new();
    let mut check = |layer: usize,
                     what: &'static str,
                     values: &mut dyn Iterator<Item = f64>,
                     lo: f64,
                     hi: f64| {
        let (mut count, mut worst, mut far) = (0, 0.0, 0.0f64);
        for v in values {
            if v < lo || v > hi {
                count += 1;
                let d = (lo - v).max(v - hi);
                if d > far {
                    (far, worst) = (d, v);
                }
            }
        }
        if count > 0 {
            found.push((layer, what, count, worst, (lo, hi)));
        }
    };
    for (l, (layer, p)) in trace.layers.iter().zip(&plan.layers).enumerate() {
        let mut scores = layer
            .scores
            .iter()
            .flat_map(|s| s.as_slice().iter().copied());
        check(l, "attention score", &mut scores, p.scores.lo, p.scores.hi);
        let mut gates = layer.gate.as_slice().iter().copied();
        check(l, "FFN gate", &mut gates, p.gate.lo, p.gate.hi);
        let inputs = [
            ("input_layernorm statistic", &layer.input),
            ("attn_sub_norm statistic", &layer.attn_output),
            ("post_attention_layernorm statistic", &layer.attn_residual),
            ("ffn_sub_norm statistic", &layer.ffn_act),
        ];
        for ((what, m), norm) in inputs.iter().zip(&p.norms) {
            let mut stats = (0..m.rows()).map(|r| {
                let row = m.row(r);
                row.iter().map(|x| x * x).sum::<f64>() / row.len() as f64 + eps
            });
            check(l, what, &mut stats, norm.lo, norm.hi);
        }
    }
    found
}
