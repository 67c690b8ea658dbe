//! `ensi bench layer`: one BitNet b1.58 decoder layer of a real model's shape on ciphertexts
//! (the column-block layout, bootstrapping fused into RMSNorm), with random ternary weights of
//! realistic density and scale or a checkpoint's layer, against the plaintext layer. Prints one
//! JSON object: time per step, operations per step, bootstraps and their share of the time,
//! peak memory, key memory, and the precision against the plaintext layer.
//!
//! The shapes: `tiny` (the embedded model), `large` (1bitLLM/bitnet_b1_58-large: hidden 1536,
//! FFN 4096, 16 heads of 96, SiLU) and `2b4t` (microsoft/bitnet-b1.58-2B-4T: hidden 2560, FFN
//! 6912, 20 query and 5 key/value heads of 128, ReLU²). Only the layer's own weights matter: the
//! vocabulary is cut to 256 tokens (the embedding is looked up by the client in any case).
//!
//! Two plans of the layer (`--kernel`): `slots`, refresh then a BSGS product in slots
//! ([`ensi_nn::block_layer`]), and `coeff`, every projection on the coefficient kernel fused
//! with its bootstrap ([`ensi_nn::coeff_layer`]); `auto` lets the planner pick from measured
//! costs (`--costs`, `--coeff-costs`).
//!
//! Key memory: the rotations of the slot plan are used at the bootstrapper's output level or
//! below, so their keys are truncated to it ([`ensi_ckks::SwitchingKey::truncate`]); the
//! coefficient plan's up to the coefficient bootstrap's output level (the bootstrapper's plus
//! the SlotsToCoeffs budget), and its packing keys are level-0 keys
//! ([`ensi_ckks::GaloisKey::generate_level0`]); those bootstrapping itself uses are kept whole.

use crate::bench_matmul::{read_bootstrap_cost, read_costs};
use crate::run::{demo_parameters, load_model};
use clap::{Args, ValueEnum};
use ensi_bitnet::ops::AttentionKind;
use ensi_bitnet::{
    Activation, Family, ForwardOptions, Model, ModelConfig, ScaleConvention, random_model,
};
use ensi_ckks::{
    BootstrapKeys, Bootstrapper, CkksContext, EvaluationKey, GaloisKey, OpCount, SecretKey,
};
use ensi_nn::block::{ChunkedMatrix, chunk_cols, chunks};
use ensi_nn::block_layer::{
    BLOCK_STEPS, block_layer_logged, block_level_plan, block_level_plan_at, block_rotations,
    head_layout_cols,
};
use ensi_nn::coeff_layer::{
    COEFF_PROJECTION_STEPS, CoeffBounds, check_coeff_layer, coeff_layer_keys, coeff_layer_logged,
    coeff_level_plan, coeff_level_plan_at, coeff_stream_level,
};
use ensi_nn::decoder::calibrate;
use ensi_nn::plan::{
    CoeffCosts, LayerKernel, activation_error, inv_sqrt_error, plan_degrees, predict_coeff_layer,
    predict_layer, sigmoid_error,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// The layer shapes `ensi bench layer` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// The embedded model: hidden 128, FFN 320, 4 heads of 32 (2 KV heads), ReLU².
    Tiny,
    /// 1bitLLM/bitnet_b1_58-large: hidden 1536, FFN 4096, 16 heads of 96, SiLU.
    Large,
    /// microsoft/bitnet-b1.58-2B-4T: hidden 2560, FFN 6912, 20 heads of 128 (5 KV), ReLU².
    #[value(name = "2b4t")]
    B2b4t,
}

impl Shape {
    /// The configuration of one layer of this shape (vocabulary 256).
    pub fn config(self) -> ModelConfig {
        let mut c = ensi_bitnet::embedded_config();
        c.num_hidden_layers = 1;
        match self {
            Self::Tiny => {}
            Self::Large => {
                c.family = Family::Llama1Bit;
                c.hidden_size = 1536;
                c.intermediate_size = 4096;
                c.num_attention_heads = 16;
                c.num_key_value_heads = 16;
                c.head_dim = 96;
                c.hidden_act = Activation::Silu;
                c.rope_theta = 10_000.0;
                c.tie_word_embeddings = false;
                c.weight_scale = ScaleConvention::Divide;
            }
            Self::B2b4t => {
                c.hidden_size = 2560;
                c.intermediate_size = 6912;
                c.num_attention_heads = 20;
                c.num_key_value_heads = 5;
                c.head_dim = 128;
            }
        }
        c
    }
}

/// The layer plan `ensi bench layer` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KernelArg {
    /// Refresh, then a BSGS product in slots (the column-block layer).
    Slots,
    /// Every projection on the coefficient kernel, fused with its bootstrap.
    Coeff,
    /// The planner's choice from --costs and --coeff-costs.
    Auto,
}

/// Options of `ensi bench layer`.
#[derive(Args, Debug)]
pub struct LayerBenchArgs {
    /// The layer's shape (random ternary weights drawn like the embedded model's).
    #[arg(long, value_enum, default_value_t = Shape::Large)]
    shape: Shape,
    /// Take the layer from this checkpoint directory instead (its `--layer`).
    #[arg(long, value_name = "DIR", conflicts_with = "shape")]
    checkpoint: Option<PathBuf>,
    /// Which layer of the checkpoint.
    #[arg(long, default_value_t = 0)]
    layer: usize,
    /// Prompt length n (rounded up to a power of two by the layout).
    #[arg(long, default_value_t = 8)]
    tokens: usize,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Degree of the sigmoid polynomial.
    #[arg(long, default_value_t = 31)]
    sigmoid_degree: usize,
    /// Degree of the FFN activation polynomial.
    #[arg(long, default_value_t = 31)]
    act_degree: usize,
    /// Seed of the weights, the prompt and the keys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The tiny shape at a small INSECURE ring (N = 2^13): a quick check of the harness.
    #[arg(long)]
    smoke: bool,
    /// Fail unless the layer matches the plaintext layer to this many bits (relative to its
    /// largest value) and goes through the level plan written down for it.
    #[arg(long)]
    check_bits: Option<f64>,
    /// Let the planner choose every polynomial's degree (sigmoid, activation, the four norms'
    /// inverse square roots; from 15, 31, 63, 127): the smallest whose error on its calibrated
    /// interval is at most 2^-BITS and with which the level plan holds (overrides
    /// --sigmoid-degree and --act-degree).
    #[arg(long, value_name = "BITS")]
    plan_degrees: Option<f64>,
    /// Per-operation costs (`ensi bench ckks` JSON at the layers' level, with `bootstrap`): the
    /// planner's predicted layer time goes into the JSON beside the measured one.
    #[arg(long, value_name = "FILE")]
    costs: Option<PathBuf>,
    /// With `--costs`: print the prediction only (no keys, no encrypted run).
    #[arg(long, requires = "costs")]
    predict_only: bool,
    /// The layer plan: `slots`, `coeff` or `auto` (the faster prediction; needs --costs and
    /// --coeff-costs).
    #[arg(long, value_enum, default_value_t = KernelArg::Slots)]
    kernel: KernelArg,
    /// Step costs of the coefficient kernel (`ensi bench coeff` JSON with `coeff_costs_s`,
    /// from the same machine and thread count): the coefficient plan's prediction.
    #[arg(long, value_name = "FILE")]
    coeff_costs: Option<PathBuf>,
}

/// The coefficient kernel's step costs from `ensi bench coeff`'s JSON.
fn read_coeff_costs(path: &std::path::Path) -> Result<CoeffCosts, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let c = &doc["coeff_costs_s"];
    let get = |k: &str| {
        c[k].as_f64()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                format!(
                    "{}: no coeff_costs_s.{k} (run ensi bench coeff, which measures them)",
                    path.display()
                )
            })
    };
    Ok(CoeffCosts {
        slots_to_coeffs: get("slots_to_coeffs")?,
        integer_product: get("integer_product")?,
        pack_step: get("pack_step")?,
        coeff_bootstrap: get("coeff_bootstrap")?,
        rotate: get("rotate")?,
    })
}

/// Runs the benchmark and prints its JSON on standard output; progress goes to standard error.
pub fn run_layer(args: &LayerBenchArgs) -> ExitCode {
    run_json("layer", args.threads, || bench_layer(args))
}

/// Runs `bench` on a pool of `threads` worker threads (every core by default) and prints its
/// JSON on standard output, or the error (prefixed by `ensi bench NAME`) on standard error.
pub fn run_json(
    name: &str,
    threads: Option<usize>,
    bench: impl FnOnce() -> Result<Value, String> + Send,
) -> ExitCode {
    let result = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| format!("thread pool: {e}"))
        .and_then(|pool| pool.install(bench));
    match result {
        Ok(doc) => {
            println!("{doc}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ensi bench {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The peak resident set of this process (`VmHWM`), in bytes, where the OS reports it.
pub fn peak_rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The operation counts as JSON.
pub fn ops_json(ops: &OpCount) -> Value {
    json!({
        "add": ops.add, "plain_mul": ops.plain_mul, "const_mul": ops.const_mul,
        "encode": ops.encode, "tensor": ops.tensor, "relinearize": ops.relinearize,
        "rescale": ops.rescale, "rotate": ops.rotate, "hoisted_rotate": ops.hoisted_rotate,
        "conjugate": ops.conjugate, "key_switches": ops.key_switches(),
        "bootstrap": ops.bootstrap, "bootstrap_s": ops.bootstrap_micros as f64 * 1e-6,
    })
}

/// The steps of [`BLOCK_STEPS`] that are projections (with a residual add or two).
const PROJECTION_STEPS: [&str; 4] = [
    BLOCK_STEPS[1],
    BLOCK_STEPS[5],
    BLOCK_STEPS[7],
    BLOCK_STEPS[11],
];

fn gib(bytes: usize) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

fn bench_layer(args: &LayerBenchArgs) -> Result<Value, String> {
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let started = Instant::now();
    let (model, shape_name): (Model, String) = match &args.checkpoint {
        Some(dir) => (load_model(Some(dir))?, dir.display().to_string()),
        None => {
            let shape = if args.smoke { Shape::Tiny } else { args.shape };
            let cfg = shape.config();
            let name = shape
                .to_possible_value()
                .map_or_else(String::new, |v| v.get_name().to_owned());
            eprintln!(
                "ensi bench layer: {name}: hidden {}, FFN {}, {} heads of {} ({} KV), random \
                 ternary weights",
                cfg.hidden_size,
                cfg.intermediate_size,
                cfg.num_attention_heads,
                cfg.head_dim,
                cfg.num_key_value_heads
            );
            (
                random_model(cfg, args.seed, false).map_err(|e| e.to_string())?,
                name,
            )
        }
    };
    let cfg = model.config().clone();
    let w = model
        .layers()
        .get(args.layer)
        .ok_or_else(|| format!("the model has no layer {}", args.layer))?;
    if args.tokens == 0 {
        return Err("--tokens must be at least 1".into());
    }
    let n = args.tokens;
    let n_pad = n.next_power_of_two();
    // The prompt: random tokens; its padding repeats the last one (the layout's rule).
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let vocab = cfg.vocab_size as u64;
    let draw = |rng: &mut ChaCha20Rng, count: usize| -> Vec<u32> {
        (0..count)
            .map(|_| (rng.next_u64() % vocab) as u32)
            .collect()
    };
    let real = draw(&mut rng, n);
    let padded = ensi_nn::block_layer::pad_prompt(&real);
    // The plaintext pass: the layer's input and reference output, and (a second prompt) the
    // calibration.
    let options = ForwardOptions::new(AttentionKind::SigmoidBias(-(n as f64).ln()), false);
    let layer_trace = |tokens: &[u32]| -> Result<ensi_bitnet::LayerTrace<f64>, String> {
        let mut t = model
            .forward::<f64>(tokens, &options)
            .map_err(|e| e.to_string())?;
        Ok(t.layers.swap_remove(args.layer))
    };
    let trace = layer_trace(&padded)?;
    let x_plain = trace.input.as_slice().to_vec();
    let other = ensi_nn::block_layer::pad_prompt(&draw(&mut rng, n));
    let other_trace = layer_trace(&other)?;
    let mut plan = calibrate(
        &[&trace, &other_trace],
        &cfg,
        0.1,
        args.sigmoid_degree,
        args.act_degree,
    );
    // Parameters: the 128-bit N = 2^16 set (the smoke run: N = 2^13, INSECURE).
    let (params, literal) = demo_parameters(args.smoke.then_some(13))?;
    let ctx = CkksContext::new(params).map_err(err)?;
    let slots = ctx.n() / 2;
    let level = ctx
        .max_level()
        .checked_sub(literal.depth())
        .ok_or("the parameter set cannot bootstrap")?;
    // The planner's degrees, where asked for.
    if let Some(bits) = args.plan_degrees {
        let fits = |p: &ensi_nn::decoder::LayerPlan| {
            block_level_plan_at(level, slots, level, &cfg, p, n_pad).is_ok()
        };
        plan = plan_degrees(&cfg, &plan, n, (-bits).exp2(), &[15, 31, 63, 127], &fits)
            .ok_or("no polynomial degrees fit the level plan")?;
    }
    let norm_errors: Vec<f64> = plan
        .norms
        .iter()
        .map(|p| inv_sqrt_error(p, p.degree))
        .collect();
    let poly_errors = json!({
        "sigmoid": sigmoid_error(&plan, n, plan.sigmoid_degree),
        "activation_relative": activation_error(&cfg, &plan, plan.act_degree),
        "inv_sqrt_relative": norm_errors,
    });
    let norm_degrees: Vec<usize> = plan.norms.iter().map(|p| p.degree).collect();
    eprintln!(
        "ensi bench layer: degrees: sigmoid {} (error {:.1e}), activation {} (relative {:.1e}), \
         norms {norm_degrees:?} (relative {:.1e} at worst) on the calibrated intervals",
        plan.sigmoid_degree,
        poly_errors["sigmoid"].as_f64().unwrap_or(f64::NAN),
        plan.act_degree,
        poly_errors["activation_relative"]
            .as_f64()
            .unwrap_or(f64::NAN),
        norm_errors.iter().copied().fold(0.0f64, f64::max)
    );
    // The planner's predictions, before any key exists, and its choice of plan.
    let n_ring = ctx.n();
    let budget = literal.stc_level_budget;
    let coeff_plan = coeff_level_plan_at(
        level,
        budget,
        n_ring,
        coeff_stream_level(level, budget),
        &cfg,
        &plan,
        n_pad,
    )
    .and_then(|levels| check_coeff_layer(w).map(|()| levels));
    let prediction = match &args.costs {
        Some(path) => {
            let costs = read_costs(path)?;
            let bootstrap = read_bootstrap_cost(path)?;
            let (_, bootstraps) =
                block_level_plan_at(level, slots, level, &cfg, &plan, n_pad).map_err(err)?;
            let p =
                predict_layer(&costs, bootstrap, &cfg, n_pad, slots, bootstraps).map_err(err)?;
            eprintln!(
                "ensi bench layer: slot plan predicted {:.1} s: projections {:.1} s, {} \
                 bootstraps {:.1} s",
                p.total_s, p.projections_s, p.bootstraps, p.bootstrap_s
            );
            let c = match (&args.coeff_costs, &coeff_plan) {
                (Some(file), Ok(_)) => {
                    let c = predict_coeff_layer(
                        &read_coeff_costs(file)?,
                        bootstrap,
                        &cfg,
                        n_ring,
                        n_pad,
                    )
                    .map_err(err)?;
                    eprintln!(
                        "ensi bench layer: coefficient plan predicted {:.1} s: kernels {:.1} s, \
                         2 statistic bootstraps {:.1} s ({} bootstraps in all)",
                        c.total_s, c.projections_s, c.statistic_s, c.bootstraps
                    );
                    Some(c)
                }
                _ => None,
            };
            Some((p, c))
        }
        None => None,
    };
    let kernel = match args.kernel {
        KernelArg::Slots => LayerKernel::Slots,
        KernelArg::Coeff => LayerKernel::Coeff,
        KernelArg::Auto => match &prediction {
            Some((p, c)) if args.coeff_costs.is_some() => {
                let k = LayerKernel::choose(p, c.as_ref());
                eprintln!("ensi bench layer: the planner picks the {} plan", k.name());
                k
            }
            _ => {
                return Err(
                    "--kernel auto needs --costs and --coeff-costs (measured on this machine)"
                        .into(),
                );
            }
        },
    };
    if let (LayerKernel::Coeff, Err(e)) = (kernel, &coeff_plan) {
        return Err(format!(
            "the coefficient plan does not hold for this layer: {e}"
        ));
    }
    let prediction_json = |measured: Option<(f64, f64)>| {
        prediction.as_ref().map(|(p, c)| {
            let mut v = json!({
                "total_s": p.total_s, "projections_s": p.projections_s,
                "bootstraps": p.bootstraps, "bootstrap_s": p.bootstrap_s,
                "projections": p.projections.iter().map(|(name, ops, t)| json!({
                    "name": name, "seconds": t, "ops": ops_json(ops),
                })).collect::<Vec<_>>(),
                "chosen": kernel.name(),
            });
            if let Some(c) = c {
                v["coeff"] = json!({
                    "total_s": c.total_s, "projections_s": c.projections_s,
                    "bootstraps": c.bootstraps, "statistic_s": c.statistic_s,
                    "groups": c.groups.iter().map(|(name, counts, t)| json!({
                        "name": name, "seconds": t, "slots_to_coeffs": counts[0],
                        "products": counts[1], "key_switches": counts[2],
                        "bootstraps": counts[3], "rotations": counts[4],
                    })).collect::<Vec<_>>(),
                });
            }
            if let Some((layer, proj)) = measured {
                let (total, projections) = match (kernel, c) {
                    (LayerKernel::Coeff, Some(c)) => (c.total_s, c.projections_s),
                    _ => (p.total_s, p.projections_s),
                };
                v["predicted_over_measured"] = json!({
                    "layer": total / layer, "projections": projections / proj,
                });
            }
            v
        })
    };
    // The calibrated intervals the polynomials cover (their width sets their error).
    let intervals = json!({
        "scores": [plan.scores.lo, plan.scores.hi],
        "gate": [plan.gate.lo, plan.gate.hi],
        "norm_statistics": plan.norms.iter().map(|p| [p.lo, p.hi]).collect::<Vec<_>>(),
        "unit_bounds": plan.unit_bounds,
    });
    if args.predict_only {
        return Ok(json!({
            "bench": "layer", "kernel": kernel.name(), "shape": shape_name, "tokens": n,
            "padded_tokens": n_pad, "prediction": prediction_json(None), "intervals": intervals,
            "degrees": {"sigmoid": plan.sigmoid_degree, "activation": plan.act_degree,
                "norms": norm_degrees},
            "polynomial_errors": poly_errors,
        }));
    }
    // Keys: bootstrapping's whole, the layer's rotations truncated to the output level.
    let clock = Instant::now();
    eprintln!(
        "ensi bench layer: N = 2^{}, {n} tokens ({n_pad} padded); generating keys",
        ctx.params().log_n()
    );
    let sk = SecretKey::generate(&ctx, &mut rng).map_err(err)?;
    let mut keys = BootstrapKeys::generate(&ctx, &sk, &literal, &mut rng).map_err(err)?;
    let bootstrap_bytes = keys.evaluation.heap_bytes();
    let boot_elements = keys.evaluation.galois_elements();
    let (rotations, level0, key_level) = match kernel {
        LayerKernel::Slots => (
            block_rotations(&cfg, n_pad, slots, false).map_err(err)?,
            Vec::new(),
            level,
        ),
        LayerKernel::Coeff => {
            let (r, g) = coeff_layer_keys(&cfg, n_ring, n_pad).map_err(err)?;
            (r, g, level + budget)
        }
    };
    let (mut layer_bytes, mut layer_whole_bytes, mut layer_keys) = (0usize, 0usize, 0usize);
    for r in &rotations {
        let g = ctx.rotation_galois_element(*r);
        if boot_elements.contains(&g) || keys.evaluation.galois(g).is_some() {
            continue;
        }
        let mut key = GaloisKey::generate(&ctx, &sk, g, &mut rng).map_err(err)?;
        layer_whole_bytes += key.switching_key().heap_bytes();
        key.truncate(&ctx, key_level).map_err(err)?;
        layer_bytes += key.switching_key().heap_bytes();
        layer_keys += 1;
        keys.insert(EvaluationKey::Galois(key));
    }
    let mut level0_bytes = 0usize;
    for &g in &level0 {
        let key = GaloisKey::generate_level0(&ctx, &sk, g, &mut rng).map_err(err)?;
        level0_bytes += key.switching_key().heap_bytes();
        keys.insert(EvaluationKey::Galois(key));
    }
    let bts = Bootstrapper::new(&ctx, literal, keys).map_err(err)?;
    if bts.output_level() != level {
        return Err("the bootstrapper's output level is not the one the keys were cut at".into());
    }
    let keygen_s = clock.elapsed().as_secs_f64();
    eprintln!(
        "ensi bench layer: keys in {keygen_s:.1} s: bootstrapping {:.2} GiB, {layer_keys} layer \
         rotations {:.2} GiB (whole: {:.2} GiB), {} level-0 packing keys {:.3} GiB",
        gib(bootstrap_bytes),
        gib(layer_bytes),
        gib(layer_whole_bytes),
        level0.len(),
        gib(level0_bytes)
    );
    let delta = ctx.params().default_scale();
    // Activations wider than one ciphertext are chunked (`slots / n_pad` columns each).
    let chunk = chunk_cols(slots, n_pad);
    let head_cols = head_layout_cols(&cfg).map_err(err)?;
    eprintln!(
        "ensi bench layer: {chunk} columns per ciphertext: hidden in {}, heads in {}, FFN in {} \
         chunks",
        chunks(cfg.hidden_size, chunk).len(),
        chunks(head_cols, chunk).len(),
        chunks(cfg.intermediate_size, chunk).len()
    );
    // The client encrypts the residual stream where the plan keeps it.
    let x_level = match kernel {
        LayerKernel::Slots => level,
        LayerKernel::Coeff => coeff_stream_level(level, budget),
    };
    let x = ChunkedMatrix::encrypt(&ctx, &sk, &x_plain, n_pad, x_level, delta, &mut rng)
        .map_err(err)?;
    warm_up(&bts, &sk, &mut rng)?;
    // The level plan first: degrees the levels cannot hold are an error before any work.
    let (predicted, bootstraps) = match kernel {
        LayerKernel::Slots => block_level_plan(&bts, level, &cfg, &plan, n_pad),
        LayerKernel::Coeff => coeff_level_plan(&bts, x_level, &cfg, &plan, n_pad),
    }
    .map_err(|e| format!("the level plan does not hold for these degrees: {e}"))?;
    let bounds = CoeffBounds::calibrate(&[&trace, &other_trace], w, 2.0).map_err(err)?;
    // The layer, step by step.
    let eval = bts.evaluator();
    let start_ops = eval.op_count();
    let mut last_ops = start_ops;
    let mut last = Instant::now();
    let clock = Instant::now();
    let mut steps: Vec<Value> = Vec::new();
    let mut seen = Vec::new();
    let mut logger = |name: &'static str, level: usize| {
        let lap = last.elapsed().as_secs_f64();
        last = Instant::now();
        let now = eval.op_count();
        let d = now - last_ops;
        last_ops = now;
        eprintln!(
            "ensi bench layer:   {name:<42} level {level:>2}  {lap:>7.1} s  {:>4} key switches",
            d.key_switches()
        );
        seen.push((name, level));
        steps.push(json!({"step": name, "level": level, "seconds": lap, "ops": ops_json(&d)}));
    };
    let out = match kernel {
        LayerKernel::Slots => block_layer_logged(&bts, &x, w, &cfg, &plan, n, &mut logger),
        LayerKernel::Coeff => coeff_layer_logged(&bts, &x, w, &cfg, &plan, &bounds, n, &mut logger),
    }
    .map_err(err)?;
    let layer_s = clock.elapsed().as_secs_f64();
    let ops = eval.op_count() - start_ops;
    let plan_followed = seen == predicted && ops.bootstrap == bootstraps;
    // Precision against the plaintext layer (the real rows).
    let got = out.decrypt(&ctx, &sk).map_err(err)?;
    let d = cfg.hidden_size;
    let expect = &trace.output.as_slice()[..n * d];
    let max = expect.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let max_err = expect
        .iter()
        .zip(&got)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    let bits = -(max_err / max).log2();
    let bootstrap_s = ops.bootstrap_micros as f64 * 1e-6;
    eprintln!(
        "ensi bench layer: layer {layer_s:.1} s ({} bootstraps, {bootstrap_s:.1} s = {:.0} %), \
         {} key switches, {bits:.1} bits against the plaintext layer",
        ops.bootstrap,
        100.0 * bootstrap_s / layer_s,
        ops.key_switches()
    );
    let projections_s: f64 = steps
        .iter()
        .filter(|v| {
            let name = v["step"].as_str().unwrap_or("");
            match kernel {
                LayerKernel::Slots => PROJECTION_STEPS.contains(&name),
                LayerKernel::Coeff => COEFF_PROJECTION_STEPS.contains(&name),
            }
        })
        .filter_map(|v| v["seconds"].as_f64())
        .sum();
    let doc = json!({
        "bench": "layer",
        "kernel": kernel.name(),
        "prediction": prediction_json(Some((layer_s, projections_s))),
        "shape": shape_name,
        "config": {
            "hidden": cfg.hidden_size, "ffn": cfg.intermediate_size,
            "heads": cfg.num_attention_heads, "kv_heads": cfg.num_key_value_heads,
            "head_dim": cfg.head_dim, "activation": format!("{:?}", cfg.hidden_act),
        },
        "tokens": n, "padded_tokens": n_pad,
        "chunks": {
            "columns_per_chunk": chunk,
            "hidden": chunks(cfg.hidden_size, chunk).len(),
            "heads": chunks(head_cols, chunk).len(),
            "ffn": chunks(cfg.intermediate_size, chunk).len(),
        },
        "threads": rayon::current_num_threads(),
        "params": {
            "log_n": ctx.params().log_n(), "secure": !args.smoke,
            "layer_level": level, "stream_level": x_level,
        },
        "weights": {
            "nonzero_fraction": nonzero_fraction(w),
        },
        "plan": {
            "sigmoid_degree": plan.sigmoid_degree, "act_degree": plan.act_degree,
            "levels_as_written": plan_followed,
            "intervals": intervals, "polynomial_errors": poly_errors,
            "degrees_planned": args.plan_degrees.is_some(), "norm_degrees": norm_degrees,
        },
        "times_s": {
            "keygen": keygen_s, "layer": layer_s, "bootstrapping": bootstrap_s,
            "bootstrap_share": bootstrap_s / layer_s, "total": started.elapsed().as_secs_f64(),
        },
        "steps": steps,
        "ops": ops_json(&ops),
        "memory": {
            "bootstrap_keys_gib": gib(bootstrap_bytes),
            "layer_keys": layer_keys,
            "layer_keys_gib": gib(layer_bytes),
            "layer_keys_whole_gib": gib(layer_whole_bytes),
            "level0_keys": level0.len(),
            "level0_keys_gib": gib(level0_bytes),
            "peak_rss_gib": peak_rss().map(gib),
        },
        "precision": {
            "max_abs_error": max_err, "max_abs_value": max, "bits": bits,
        },
    });
    if let Some(want) = args.check_bits {
        if !plan_followed {
            return Err(format!(
                "the layer did not follow its level plan (seen {seen:?}, written {predicted:?})"
            ));
        }
        if bits.is_nan() || bits < want {
            return Err(format!(
                "{bits:.1} bits against the plaintext layer, below --check-bits {want}"
            ));
        }
    }
    Ok(doc)
}

/// The fraction of non-zero ternary weights over the layer's projections.
fn nonzero_fraction(w: &ensi_bitnet::model::Layer) -> Option<f64> {
    let mut nnz = 0usize;
    let mut all = 0usize;
    for p in w.projections() {
        let t = p.as_ternary()?;
        all += t.rows() * t.cols();
        nnz += t.nnz();
    }
    Some(nnz as f64 / all as f64)
}

/// One untimed bootstrap of an encryption of zero: the first bootstrap after key generation
/// pays the first-touch page faults of the transforms' buffers (about 40% slower), which a
/// benchmark should not time.
pub fn warm_up(
    bts: &ensi_ckks::Bootstrapper,
    sk: &ensi_ckks::SecretKey,
    rng: &mut ChaCha20Rng,
) -> Result<(), String> {
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let ctx = bts.evaluator().context();
    let slots = ctx.n() / 2;
    let pt = ctx
        .encode(&[0.0], slots, 0, ctx.params().default_scale())
        .map_err(err)?;
    bts.bootstrap(&sk.encrypt(ctx, &pt, rng).map_err(err)?)
        .map_err(err)?;
    Ok(())
}
