//! `ensi generate`: greedy generation on ciphertexts in one process, each new token one round
//! between the client and the server, with the server's encrypted key/value cache between
//! rounds.
//!
//! 1. The client encrypts the prompt padded to the cache's capacity (the prompt and every new
//!    token but the last, rounded up to a power of two); the server runs every layer once
//!    (`block_prefill`) and keeps each layer's encrypted keys and values.
//! 2. The client decrypts the final hidden state, applies the LM head and picks the argmax.
//! 3. Each further token: the client encrypts its embedding in every row; the server adds its
//!    key and value to the cache and attends through it (`block_step`: one sigmoid per layer
//!    instead of one per position), and returns the final hidden state.
//!
//! The report compares every round with two plaintext references (sigmoid attention,
//! activation quantization off): the plaintext model of the same cached computation (the
//! precision of the encryption) and greedy decoding that recomputes the whole sequence each
//! step (the tokens). With `--compare-recompute` it also times the server's alternative
//! without a cache: the whole sequence of the last round run again.

use crate::calibration;
use crate::keycache;
use crate::run::{
    block_log_n, demo_parameters, head_of_normalized, load_model, prompt_tokens, seeded_rng, top_k,
    widest_block,
};
use clap::Args;
use ensi_bitnet::{AttentionKind, ForwardOptions, Model, generate_greedy, generate_greedy_cached};
use ensi_ckks::{Bootstrapper, CkksContext, SecretKey};
use ensi_nn::block::ChunkedMatrix;
use ensi_nn::block_layer::{
    block_forward, block_prefill, block_rotations, block_step, generation_capacity, pad_prompt,
    pad_prompt_to, step_rotations,
};
use ensi_nn::decoder::{Progress, embed};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `ensi generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Checkpoint directory; default: the embedded model.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Prompt token ids, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "prompt")]
    tokens: Option<Vec<u32>>,
    /// Prompt text, one token per byte. Default "ENSI run".
    #[arg(long)]
    prompt: Option<String>,
    /// How many tokens to generate (the first comes from the prompt's pass, each further one
    /// from a round through the cache).
    #[arg(long, default_value_t = 4)]
    max_new_tokens: usize,
    /// A small, INSECURE demo set (the smallest ring of at least 2^13 that holds the cache).
    /// Without it the run uses the default 128-bit N = 2^16 set.
    #[arg(long)]
    insecure_small: bool,
    /// Degree of the sigmoid polynomial.
    #[arg(long, default_value_t = 31)]
    sigmoid_degree: usize,
    /// Degree of the FFN activation polynomial.
    #[arg(long, default_value_t = 63)]
    act_degree: usize,
    /// Seed for reproducible (insecure) keys; default: the operating system.
    #[arg(long)]
    seed: Option<u64>,
    /// A key directory, as for `ensi run` (keys saved on the first run, loaded afterwards).
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
    /// Also time the server's alternative without a cache: the last round's whole sequence
    /// run again from its embeddings.
    #[arg(long)]
    compare_recompute: bool,
    /// Print a JSON report on standard output.
    #[arg(long)]
    json: bool,
    /// Fail unless every token agrees with both plaintext references and every round's logits
    /// are within 1 % of the cached reference's largest logit.
    #[arg(long)]
    check: bool,
}

/// One round's figures.
struct Round {
    position: usize,
    token: u32,
    seconds: f64,
    bootstraps: usize,
    key_switches: usize,
    rel_error: f64,
    cached_token: u32,
    recomputed_token: u32,
}

/// Runs `ensi generate`.
pub fn run(args: &GenerateArgs) -> ExitCode {
    match generate(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ensi generate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The progress printer of a server pass.
fn printer(clock: Instant) -> impl FnMut(Progress) {
    move |p| match p {
        Progress::Layer { index, count } => eprintln!(
            "ensi generate:   layer {}/{count} ({:.0} s)",
            index + 1,
            clock.elapsed().as_secs_f64()
        ),
        Progress::Step { .. } => {}
        Progress::FinalNorm => eprintln!(
            "ensi generate:   final norm ({:.0} s)",
            clock.elapsed().as_secs_f64()
        ),
    }
}

/// The client's side of a round: decrypts the final hidden state, takes `row`, applies the
/// final gain and the LM head.
fn client_logits(
    ctx: &Arc<CkksContext>,
    sk: &SecretKey,
    model: &Model,
    hidden: &ChunkedMatrix,
    row: usize,
) -> Result<Vec<f64>, String> {
    let d = model.config().hidden_size;
    let h = hidden.decrypt(ctx, sk).map_err(|e| e.to_string())?;
    Ok(head_of_normalized(model, &h[row * d..(row + 1) * d]))
}

fn rel_error(expect: &[f64], got: &[f64]) -> f64 {
    let max = expect.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    expect
        .iter()
        .zip(got)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / max
}

fn generate(args: &GenerateArgs) -> Result<(), String> {
    let started = Instant::now();
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let model = load_model(args.checkpoint.as_deref())?;
    let cfg = model.config().clone();
    let prompt = prompt_tokens(args.tokens.as_deref(), args.prompt.as_deref(), &cfg)?;
    let k = args.max_new_tokens;
    if k == 0 {
        return Err("--max-new-tokens must be at least 1".into());
    }
    let n = prompt.len();
    let cap = generation_capacity(n, k).ok_or("--max-new-tokens: the capacity overflows")?;
    let widest = widest_block(&cfg, cap, false);
    let (params, literal) = demo_parameters(args.insecure_small.then(|| block_log_n(widest)))?;
    let ctx = CkksContext::new(params).map_err(err)?;
    let slots = ctx.n() / 2;
    if widest > slots {
        eprintln!(
            "ensi generate: a cache of {cap} positions needs {widest} slots for this model, \
             N = 2^{} has {slots}: activations are split over {} ciphertexts (column chunks)",
            ctx.params().log_n(),
            widest.div_ceil(slots)
        );
    }
    // The plaintext references.
    let exact = ForwardOptions::new(AttentionKind::Sigmoid, false);
    let (cached_ref, cached_logits) =
        generate_greedy_cached::<f64>(&model, &prompt, k, &exact).map_err(|e| e.to_string())?;
    let recomputed_ref =
        generate_greedy::<f64>(&model, &prompt, k, &exact).map_err(|e| e.to_string())?;
    let plan_for = |len: usize| {
        calibration::plan_for(
            &model,
            args.checkpoint.as_deref(),
            len,
            false,
            args.sigmoid_degree,
            args.act_degree,
        )
    };
    eprintln!(
        "ensi generate: {n} prompt tokens, {k} new, cache capacity {cap}; N = 2^{} ({}); keys",
        ctx.params().log_n(),
        if args.insecure_small {
            "INSECURE demo set"
        } else {
            "128-bit"
        }
    );
    let clock = Instant::now();
    let mut rotations = block_rotations(&cfg, cap, slots, false).map_err(err)?;
    rotations.extend(step_rotations(cap));
    let mut rng = seeded_rng(args.seed)?;
    let obtained = keycache::obtain(
        &ctx,
        &literal,
        &rotations,
        args.keys.as_deref(),
        args.insecure_small,
        args.seed.is_some(),
        &mut rng,
    )?;
    let (sk, keys) = (obtained.sk, obtained.keys);
    let bts = Bootstrapper::new(&ctx, literal, keys).map_err(err)?;
    let keys_s = clock.elapsed().as_secs_f64();
    eprintln!("ensi generate: keys {} ({keys_s:.1} s)", obtained.source);
    let eval = bts.evaluator();
    let (level, delta) = (bts.output_level(), ctx.params().default_scale());
    // Round 0: the prompt.
    let (plan, source) = plan_for(n)?;
    eprintln!("ensi generate: calibration {source}");
    let x = ChunkedMatrix::encrypt(
        &ctx,
        &sk,
        &embed(&model, &pad_prompt_to(&prompt, cap)).ok_or("token outside the table")?,
        cap,
        level,
        delta,
        &mut rng,
    )
    .map_err(err)?;
    eprintln!("ensi generate: the prompt's pass");
    let before = eval.op_count();
    let clock = Instant::now();
    let (hidden, mut cache) = block_prefill(
        &bts,
        &model,
        &x,
        &plan,
        n,
        &mut printer(clock),
        &mut |_, _| {},
    )
    .map_err(err)?;
    let prefill_s = clock.elapsed().as_secs_f64();
    let prefill_ops = eval.op_count() - before;
    let mut logits = client_logits(&ctx, &sk, &model, &hidden, n - 1)?;
    let mut rounds: Vec<Round> = Vec::new();
    let mut seq = prompt.clone();
    loop {
        let i = seq.len() - n;
        let token = top_k(&logits, 1)[0].0 as u32;
        let rel = rel_error(&cached_logits[i], &logits);
        if let Some(r) = rounds.last_mut() {
            r.token = token;
            r.rel_error = rel;
        }
        eprintln!(
            "ensi generate: token {} = {token} ({:?}); cached reference {}, recomputing \
             reference {}; logit error {:.3}%",
            i + 1,
            char::from_u32(token)
                .filter(|c| !c.is_control())
                .unwrap_or('?'),
            cached_ref[i],
            recomputed_ref[i],
            100.0 * rel
        );
        if i == 0 {
            rounds.push(Round {
                position: n - 1,
                token,
                seconds: prefill_s,
                bootstraps: prefill_ops.bootstrap,
                key_switches: prefill_ops.key_switches(),
                rel_error: rel,
                cached_token: cached_ref[0],
                recomputed_token: recomputed_ref[0],
            });
        }
        seq.push(token);
        if seq.len() - n == k {
            break;
        }
        // A round: the new token's embedding in every row.
        let position = seq.len() - 1;
        let (plan, _) = plan_for(position + 1)?;
        let emb = embed(&model, &[token]).ok_or("token outside the table")?;
        let x = ChunkedMatrix::encrypt(&ctx, &sk, &emb.repeat(cap), cap, level, delta, &mut rng)
            .map_err(err)?;
        eprintln!("ensi generate: round at position {position}");
        let before = eval.op_count();
        let clock = Instant::now();
        let hidden = block_step(
            &bts,
            &model,
            &x,
            &plan,
            &mut cache,
            &mut printer(clock),
            &mut |_, _| {},
        )
        .map_err(err)?;
        let ops = eval.op_count() - before;
        rounds.push(Round {
            position,
            token: 0,
            seconds: clock.elapsed().as_secs_f64(),
            bootstraps: ops.bootstrap,
            key_switches: ops.key_switches(),
            rel_error: 0.0,
            cached_token: cached_ref[seq.len() - n],
            recomputed_token: recomputed_ref[seq.len() - n],
        });
        logits = client_logits(&ctx, &sk, &model, &hidden, 0)?;
    }
    let generated: Vec<u32> = seq[n..].to_vec();
    // The alternative without a cache: the last round's whole sequence again.
    let recompute = if args.compare_recompute && k > 1 {
        let last = &seq[..seq.len() - 1];
        let padded = pad_prompt(last);
        let (plan, _) = plan_for(last.len())?;
        let x = ChunkedMatrix::encrypt(
            &ctx,
            &sk,
            &embed(&model, &padded).ok_or("token outside the table")?,
            padded.len(),
            level,
            delta,
            &mut rng,
        )
        .map_err(err)?;
        eprintln!(
            "ensi generate: recomputing the {} tokens of the last round without a cache",
            last.len()
        );
        let before = eval.op_count();
        let clock = Instant::now();
        let hidden = block_forward(
            &bts,
            &model,
            &x,
            &plan,
            last.len(),
            &mut printer(clock),
            &mut |_, _| {},
        )
        .map_err(err)?;
        let seconds = clock.elapsed().as_secs_f64();
        let ops = eval.op_count() - before;
        let logits = client_logits(&ctx, &sk, &model, &hidden, last.len() - 1)?;
        Some((
            last.len(),
            padded.len(),
            seconds,
            ops.bootstrap,
            top_k(&logits, 1)[0].0 as u32,
        ))
    } else {
        None
    };
    let total_s = started.elapsed().as_secs_f64();
    // The report.
    eprintln!("ensi generate: generated {generated:?}");
    eprintln!(
        "  cached plaintext reference {cached_ref:?}, recomputing reference {recomputed_ref:?}"
    );
    eprintln!("  round  position  token  time (s)  bootstraps  key switches  logit error");
    for (i, r) in rounds.iter().enumerate() {
        eprintln!(
            "  {i:>5}  {:>8}  {:>5}  {:>8.1}  {:>10}  {:>12}  {:>10.3}%",
            r.position,
            r.token,
            r.seconds,
            r.bootstraps,
            r.key_switches,
            100.0 * r.rel_error
        );
    }
    let step_times: Vec<f64> = rounds.iter().skip(1).map(|r| r.seconds).collect();
    let mean_step = step_times.iter().sum::<f64>() / step_times.len().max(1) as f64;
    if let Some((len, padded, seconds, boots, token)) = recompute {
        eprintln!(
            "  without a cache, the last round's {len} tokens (padded to {padded}) take \
             {seconds:.1} s ({boots} bootstraps; next token {token}); a round through the \
             cache takes {mean_step:.1} s on average: {:.2}x",
            seconds / mean_step.max(1e-9)
        );
    }
    eprintln!("  keys {keys_s:.1} s, total {total_s:.1} s");
    let worst = rounds.iter().map(|r| r.rel_error).fold(0.0f64, f64::max);
    let agree = generated == cached_ref && generated == recomputed_ref;
    if args.json {
        println!(
            "{}",
            json!({
                "prompt": prompt,
                "generated": generated,
                "cached_reference": cached_ref,
                "recomputing_reference": recomputed_ref,
                "tokens_agree": agree,
                "capacity": cap,
                "params": {"log_n": ctx.params().log_n(), "secure_128": !args.insecure_small},
                "max_rel_logit_error": worst,
                "rounds": rounds.iter().map(|r| json!({
                    "position": r.position, "token": r.token, "seconds": r.seconds,
                    "bootstraps": r.bootstraps, "key_switches": r.key_switches,
                    "rel_logit_error": r.rel_error, "cached_reference": r.cached_token,
                    "recomputing_reference": r.recomputed_token,
                })).collect::<Vec<_>>(),
                "mean_round_seconds": mean_step,
                "recompute": recompute.map(|(len, padded, seconds, boots, token)| json!({
                    "tokens": len, "padded": padded, "seconds": seconds,
                    "bootstraps": boots, "next_token": token,
                })),
                "times_s": {"keys": keys_s, "total": total_s},
            })
        );
    }
    if args.check && !(agree && worst <= 0.01) {
        return Err(
            "--check: the generated tokens or logits do not agree with the references".into(),
        );
    }
    Ok(())
}
