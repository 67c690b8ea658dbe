//! `ensi bench matmul`: an encrypted `n x d_in` activation times a `d_out x d_in` weight matrix,
//! by four kernels at the same parameters (the 128-bit N = 2^16 set, at the layers' level 10):
//!
//! * `block-ternary`: the column-block layout, ternary weights, streamed BSGS over the
//!   diagonals, chunked over ciphertexts when `d * n_pad` exceeds the slots (ours, what the
//!   layers use);
//! * `block-dense`: the same BSGS with ordinary (dense real) weights, the slot-encoded baseline
//!   of THOR/BOLT kind;
//! * `column-ternary`: ENSI's column layout, one ciphertext per input column, each output
//!   column a signed sum (additions only, no level);
//! * `column-nexus`: the same layout with the NEXUS plaintext-ciphertext product (encrypted
//!   scalars times plaintext weights: a constant product and an addition per weight, one
//!   rescale per output).
//!
//! The column kernels run on `--sample-rows` output columns and their time is scaled by
//! `d_out / sample` (the output columns are independent, the cost per column the same in
//! expectation); the input columns are `--distinct` ciphertexts used cyclically (input column
//! `j` is ciphertext `j mod distinct`: the cost of an addition does not depend on the values,
//! and 1536 ciphertexts at level 10 would take 17 GB). Every kernel's result is decrypted and
//! compared with the f64 product of the same (aliased) inputs.

use crate::bench_layer::{ops_json, peak_rss, run_json};
use clap::Args;
use ensi_bitnet::ternary::absmean_ternarize;
use ensi_ckks::{
    Ciphertext, CkksContext, EvaluationKeySet, Evaluator, GaloisKey, OpCount, Parameters,
    ParametersLiteral, SecretKey,
};
use ensi_nn::block::{
    BlockMatrix, ChunkedMatrix, block_linear_chunked, block_linear_chunked_rotations, chunk_cols,
    chunks,
};
use ensi_nn::column::{ColumnMatrix, nexus_column, signed_sum_column};
use ensi_nn::plan::{
    ConcurrentCosts, Kernel, OpCosts, block_ops, column_nexus_ops, column_signed_sum_ops,
    plan_projection,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Instant;

const KERNELS: [&str; 4] = [
    "block-ternary",
    "block-dense",
    "column-ternary",
    "column-nexus",
];

/// Options of `ensi bench matmul`.
#[derive(Args, Debug)]
pub struct MatmulBenchArgs {
    /// Weight shapes as OUTxIN, comma-separated (bitnet_b1_58-large's q_proj, 2B-4T's up_proj).
    #[arg(long, value_delimiter = ',', default_value = "1536x1536,6912x2560")]
    shapes: Vec<String>,
    /// Prompt lengths n, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,32,128")]
    tokens: Vec<usize>,
    /// Kernels to run, comma-separated (default: all four).
    #[arg(long, value_delimiter = ',')]
    kernels: Option<Vec<String>>,
    /// Output columns the column kernels compute (their time is scaled to all of them).
    #[arg(long, default_value_t = 16)]
    sample_rows: usize,
    /// Distinct input ciphertexts of the column kernels (used cyclically).
    #[arg(long, default_value_t = 64)]
    distinct: usize,
    /// Skip block kernels predicted to need more plaintext products than this.
    #[arg(long, default_value_t = 40_000)]
    max_products: usize,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the weights, inputs and keys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Small INSECURE parameters (N = 2^12) and one small shape: a quick check of the harness.
    #[arg(long)]
    smoke: bool,
    /// Per-operation costs for the planner: the JSON of `ensi bench ckks` at the same parameter
    /// set and level (see bench/LAYERS.md). Each result then gets every kernel's predicted
    /// operations and time, and the planner's choice.
    #[arg(long, value_name = "FILE")]
    costs: Option<std::path::PathBuf>,
}

/// Reads the planner's per-operation costs from the JSON of `ensi bench ckks`.
pub fn read_costs(path: &std::path::Path) -> Result<OpCosts, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let us = |op: &str| -> Result<f64, String> {
        doc["ops"][op]["median_us"]
            .as_f64()
            .map(|v| v * 1e-6)
            .ok_or_else(|| {
                format!(
                    "{}: no ops.{op}.median_us (run ensi bench ckks with it)",
                    path.display()
                )
            })
    };
    let hoisted = &doc["ops"]["hoisted_rotate"];
    let count = hoisted["rotations"].as_f64().unwrap_or(8.0);
    let pre = hoisted["hoisted_precompute_us"].as_f64().unwrap_or(0.0) * 1e-6;
    // The kernels accumulate in place; `add` (a new ciphertext) is the fallback.
    let add = us("add_inplace").or_else(|_| us("add"))?;
    // Side-by-side costs (absent from files written before `ensi bench ckks` measured them).
    let side = |op: &str| {
        doc["ops"][op]["concurrent_us"]
            .as_f64()
            .map_or(0.0, |v| v * 1e-6)
    };
    Ok(OpCosts {
        add,
        plain_mul: us("mul_plain")?,
        encode: us("encode")?,
        const_mul: us("mul_const")?,
        rescale: us("rescale")?,
        rotate: us("rotate")?,
        hoisted_rotate: (us("hoisted_rotate")? * count - pre) / count,
        hoist_precompute: pre,
        concurrent: ConcurrentCosts {
            add: side("add_inplace"),
            plain_mul: side("mul_plain"),
            encode: side("encode"),
            const_mul: side("mul_const"),
            rescale: side("rescale"),
            rotate: side("rotate"),
            hoisted_rotate: side("hoisted_rotate"),
            const_mul_then_add: doc["ops"]["mul_const"]["concurrent_then_add_us"]
                .as_f64()
                .map_or(0.0, |v| v * 1e-6),
        },
    })
}

/// The median bootstrap time (seconds) of an `ensi bench ckks --ops ...,bootstrap` JSON file.
pub fn read_bootstrap_cost(path: &std::path::Path) -> Result<f64, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    doc["bootstrap"]["median_us"]
        .as_f64()
        .map(|v| v * 1e-6)
        .ok_or_else(|| {
            format!(
                "{}: no bootstrap.median_us (run ensi bench ckks with --ops ...,bootstrap)",
                path.display()
            )
        })
}

/// Runs the benchmark and prints its JSON on standard output; progress goes to standard error.
pub fn run_matmul(args: &MatmulBenchArgs) -> ExitCode {
    run_json("matmul", args.threads, || bench_matmul(args))
}

pub(crate) fn parse_shape(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("shape {s}: give OUTxIN, e.g. 1536x1536"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| format!("shape {s}: sides must be positive integers"))
    };
    Ok((parse(a)?, parse(b)?))
}

/// `-log2` of the largest error relative to the largest expected magnitude.
pub(crate) fn bits(expect: &[f64], got: &[f64]) -> f64 {
    let max = expect.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = expect
        .iter()
        .zip(got)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    -(err / max).log2()
}

/// The plaintext products one chunked block product performs: per chunk pair, the diagonals
/// of the smaller padded side.
pub fn block_products(rows: usize, cols: usize, n_pad: usize, slots: usize) -> usize {
    let chunk = chunk_cols(slots, n_pad);
    let mut total = 0;
    for (_, h) in chunks(rows, chunk) {
        for (_, w) in chunks(cols, chunk) {
            total += h.next_power_of_two().min(w.next_power_of_two());
        }
    }
    total
}

/// Gaussian latent weights `N(0, 1/cols)` (row-major) and the ternary ones by absmean, as
/// BitNet trains them; `draw` gives uniform values in `[0, 1)`.
pub fn random_weights(
    rows: usize,
    cols: usize,
    draw: &mut dyn FnMut() -> f64,
) -> Result<(Vec<f32>, ensi_bitnet::ternary::TernaryMatrix), String> {
    let latent: Vec<f32> = (0..rows * cols)
        .map(|_| {
            let (u1, u2) = (1.0 - draw(), draw());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() / (cols as f64).sqrt())
                as f32
        })
        .collect();
    let ternary = absmean_ternarize(rows, cols, &latent).map_err(|e| e.to_string())?;
    Ok((latent, ternary))
}

#[allow(clippy::too_many_lines)]
fn bench_matmul(args: &MatmulBenchArgs) -> Result<Value, String> {
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let kernels: Vec<String> = args
        .kernels
        .clone()
        .unwrap_or_else(|| KERNELS.iter().map(|k| (*k).to_owned()).collect());
    if let Some(k) = kernels.iter().find(|k| !KERNELS.contains(&k.as_str())) {
        return Err(format!(
            "unknown kernel {k} (known: {})",
            KERNELS.join(", ")
        ));
    }
    let (params, shapes, token_list) = if args.smoke {
        let mut lit = ParametersLiteral::insecure_bootstrap_test(12, 10, 9);
        lit.dnum = 8;
        (
            Parameters::new_insecure(lit).map_err(err)?,
            vec![(96usize, 160usize)],
            vec![8usize],
        )
    } else {
        (
            Parameters::new(ParametersLiteral::n16_bootstrappable()).map_err(err)?,
            args.shapes
                .iter()
                .map(|s| parse_shape(s))
                .collect::<Result<Vec<_>, _>>()?,
            args.tokens.clone(),
        )
    };
    if token_list.contains(&0) || args.sample_rows == 0 || args.distinct == 0 {
        return Err("--tokens, --sample-rows and --distinct must be positive".into());
    }
    let costs = args.costs.as_deref().map(read_costs).transpose()?;
    let ctx = CkksContext::new(params).map_err(err)?;
    let slots = ctx.n() / 2;
    let level = 10.min(ctx.max_level());
    let delta = ctx.params().default_scale();
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let sk = SecretKey::generate(&ctx, &mut rng).map_err(err)?;
    let mut draw = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut results = Vec::new();
    for &(rows, cols) in &shapes {
        let (latent, ternary) = random_weights(rows, cols, &mut draw)?;
        let mult = ternary.scale().multiplier::<f64>();
        let w_t = |r: usize, c: usize| mult * f64::from(ternary.get(r, c));
        let w_d = |r: usize, c: usize| f64::from(latent[r * cols + c]);
        let density = ternary.nnz() as f64 / (rows * cols) as f64;
        for &n in &token_list {
            let n_pad = n.next_power_of_two();
            eprintln!("ensi bench matmul: {rows}x{cols}, n = {n}");
            let x: Vec<f64> = (0..n * cols).map(|_| 2.0 * draw() - 1.0).collect();
            let mut entry = serde_json::Map::new();
            let reference = |w: &dyn Fn(usize, usize) -> f64, r: usize, t: usize, alias: bool| {
                (0..cols)
                    .map(|c| {
                        let src = if alias { c % args.distinct } else { c };
                        w(r, c) * x[t * cols + src]
                    })
                    .sum::<f64>()
            };
            // Block kernels.
            let products = block_products(rows, cols, n_pad, slots);
            let want_block = kernels.iter().any(|k| k.starts_with("block"));
            if want_block && products > args.max_products {
                eprintln!(
                    "ensi bench matmul:   block kernels skipped: {products} plaintext products \
                     > --max-products {}",
                    args.max_products
                );
                entry.insert(
                    "block_skipped".into(),
                    json!({"predicted_plain_mul": products}),
                );
            } else if want_block {
                let clock = Instant::now();
                let rotations =
                    block_linear_chunked_rotations(slots, rows, cols, n_pad).map_err(err)?;
                let mut keys = EvaluationKeySet::new();
                let mut key_rng = ChaCha20Rng::seed_from_u64(args.seed ^ (n as u64) << 32);
                for r in &rotations {
                    let g = ctx.rotation_galois_element(*r);
                    let mut key = GaloisKey::generate(&ctx, &sk, g, &mut key_rng).map_err(err)?;
                    key.truncate(&ctx, level).map_err(err)?;
                    keys.insert(ensi_ckks::EvaluationKey::Galois(key));
                }
                let key_bytes = keys.heap_bytes();
                let eval = Evaluator::new(&ctx, keys).map_err(err)?;
                eprintln!(
                    "ensi bench matmul:   {} rotation keys ({:.2} GiB) in {:.1} s",
                    rotations.len(),
                    key_bytes as f64 / f64::from(1u32 << 30),
                    clock.elapsed().as_secs_f64()
                );
                let chunk = chunk_cols(slots, n_pad);
                let xs: Vec<BlockMatrix> =
                    ChunkedMatrix::encrypt(&ctx, &sk, &x, n, level, delta, &mut key_rng)
                        .map_err(err)?
                        .into_parts();
                for (name, w) in [
                    (
                        "block-ternary",
                        &w_t as &(dyn Fn(usize, usize) -> f64 + Sync),
                    ),
                    ("block-dense", &w_d),
                ] {
                    if !kernels.iter().any(|k| k == name) {
                        continue;
                    }
                    let before = eval.op_count();
                    let clock = Instant::now();
                    let ys = block_linear_chunked(&eval, &xs, rows, |r, c, _| w(r, c), delta)
                        .map_err(err)?;
                    let secs = clock.elapsed().as_secs_f64();
                    let ops = eval.op_count() - before;
                    let (mut expect, mut got) = (Vec::new(), Vec::new());
                    for (y, (r0, h)) in ys.iter().zip(chunks(rows, chunk)) {
                        let d = y.decrypt(&ctx, &sk).map_err(err)?;
                        for t in 0..n {
                            for r in 0..h {
                                expect.push(reference(w, r0 + r, t, false));
                                got.push(d[t * h + r]);
                            }
                        }
                    }
                    let b = bits(&expect, &got);
                    let predicted = block_ops(slots, rows, cols, n_pad).map_err(err)?;
                    eprintln!(
                        "ensi bench matmul:   {name:<15} {secs:>8.1} s  {} plaintext products, \
                         {} key switches, {b:.1} bits",
                        ops.plain_mul,
                        ops.key_switches()
                    );
                    entry.insert(
                        name.into(),
                        json!({
                            "seconds": secs, "measured_rows": rows, "ops": ops_json(&ops),
                            "predicted_plain_mul": products,
                            "predicted_ops_equal_counted": predicted == ops,
                            "levels": 1, "precision_bits": b,
                            "ciphertexts_in": xs.len(), "ciphertexts_out": ys.len(),
                        }),
                    );
                }
            }
            // Column kernels: `distinct` column ciphertexts, `sample` output columns.
            let want_column = kernels.iter().any(|k| k.starts_with("column"));
            if want_column {
                let m = args.distinct.min(cols);
                let xm: Vec<f64> = (0..n)
                    .flat_map(|t| x[t * cols..t * cols + m].iter().copied())
                    .collect();
                let mut enc_rng = ChaCha20Rng::seed_from_u64(args.seed ^ 0xc01);
                let xc = ColumnMatrix::encrypt(&ctx, &sk, &xm, n, level, delta, &mut enc_rng)
                    .map_err(err)?;
                let cts = xc.columns();
                let eval = Evaluator::new(&ctx, EvaluationKeySet::new()).map_err(err)?;
                let sample: Vec<usize> = (0..args.sample_rows.min(rows))
                    .map(|i| i * rows / args.sample_rows.min(rows))
                    .collect();
                for name in ["column-ternary", "column-nexus"] {
                    if !kernels.iter().any(|k| k == name) {
                        continue;
                    }
                    let before = eval.op_count();
                    let clock = Instant::now();
                    let outs: Vec<Ciphertext> = sample
                        .par_iter()
                        .map(|&r| {
                            let col = |j: usize| &cts[j % m];
                            if name == "column-ternary" {
                                signed_sum_column(&eval, &col, &ternary, r)
                            } else {
                                let row: Vec<f64> = (0..cols).map(|j| w_d(r, j)).collect();
                                nexus_column(&eval, &col, &row)
                            }
                        })
                        .collect::<Result<_, _>>()
                        .map_err(err)?;
                    let secs = clock.elapsed().as_secs_f64();
                    let ops: OpCount = eval.op_count() - before;
                    let (mut expect, mut got) = (Vec::new(), Vec::new());
                    for (&r, ct) in sample.iter().zip(&outs) {
                        let d = ctx
                            .decode(&sk.decrypt(&ctx, ct).map_err(err)?)
                            .map_err(err)?;
                        let w: &dyn Fn(usize, usize) -> f64 =
                            if name == "column-ternary" { &w_t } else { &w_d };
                        for (t, &v) in d.iter().enumerate().take(n) {
                            expect.push(reference(w, r, t, true));
                            got.push(v);
                        }
                    }
                    let b = bits(&expect, &got);
                    let scaled = secs * rows as f64 / sample.len() as f64;
                    let predicted = if name == "column-ternary" {
                        column_signed_sum_ops(&ternary, &sample)
                    } else {
                        column_nexus_ops(sample.len(), cols)
                    };
                    eprintln!(
                        "ensi bench matmul:   {name:<15} {scaled:>8.1} s  ({secs:.2} s for {} of \
                         {rows} output columns), {b:.1} bits",
                        sample.len()
                    );
                    entry.insert(
                        name.into(),
                        json!({
                            "seconds": scaled, "measured_seconds": secs,
                            "measured_rows": sample.len(), "ops_measured": ops_json(&ops),
                            "predicted_ops_equal_counted": predicted == ops,
                            "levels": if name == "column-ternary" { 0 } else { 1 },
                            "precision_bits": b, "ciphertexts_in": cols,
                            "ciphertexts_out": rows,
                        }),
                    );
                }
            }
            if let Some(costs) = &costs {
                let plan = plan_projection(costs, slots, &ternary, n).map_err(err)?;
                let measured = |kernel: Kernel| {
                    let key = match kernel {
                        Kernel::BlockBsgs => "block-ternary",
                        Kernel::ColumnSignedSums => "column-ternary",
                        Kernel::ColumnNexus => "column-nexus",
                    };
                    entry.get(key).and_then(|v| v["seconds"].as_f64())
                };
                let fastest_measured = Kernel::ALL
                    .into_iter()
                    .filter_map(|k| measured(k).map(|s| (k, s)))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(k, _)| k.name());
                for p in &plan {
                    eprintln!(
                        "ensi bench matmul:   planner: {:<20} predicted {:>8.1} s (measured {})",
                        p.kernel.name(),
                        p.seconds,
                        measured(p.kernel).map_or("-".into(), |s| format!("{s:.1} s"))
                    );
                }
                entry.insert(
                    "plan".into(),
                    json!({
                        "choice": plan[0].kernel.name(),
                        "fastest_measured": fastest_measured,
                        "kernels": plan.iter().map(|p| json!({
                            "kernel": p.kernel.name(), "predicted_seconds": p.seconds,
                            "measured_seconds": measured(p.kernel),
                            "predicted_over_measured": measured(p.kernel).map(|m| p.seconds / m),
                            "levels": p.levels, "ops": ops_json(&p.ops),
                        })).collect::<Vec<_>>(),
                    }),
                );
            }
            let time = |k: &str| entry.get(k).and_then(|v| v["seconds"].as_f64());
            let ratio = |a: &str, b: &str| Some(time(b)? / time(a)?);
            entry.insert(
                "ratios".into(),
                json!({
                    "column_nexus_over_column_ternary": ratio("column-ternary", "column-nexus"),
                    "block_dense_over_block_ternary": ratio("block-ternary", "block-dense"),
                    "column_ternary_over_block_ternary": ratio("block-ternary", "column-ternary"),
                    "column_nexus_over_block_ternary": ratio("block-ternary", "column-nexus"),
                }),
            );
            results.push(json!({
                "rows": rows, "cols": cols, "tokens": n, "padded_tokens": n_pad,
                "ternary_density": density, "kernels": entry,
            }));
        }
    }
    // The cost model's counts are exact by construction: a mismatch is a bug, not noise.
    let mismatched: Vec<String> = results
        .iter()
        .flat_map(|r| {
            let label = format!("{}x{} n={}", r["rows"], r["cols"], r["tokens"]);
            r["kernels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, k)| k["predicted_ops_equal_counted"] == json!(false))
                .map(move |(name, _)| format!("{label} {name}"))
        })
        .collect();
    if !mismatched.is_empty() {
        return Err(format!(
            "predicted operation counts differ from the counted ones: {}",
            mismatched.join(", ")
        ));
    }
    Ok(json!({
        "bench": "matmul",
        "params": {"log_n": ctx.params().log_n(), "secure": !args.smoke, "level": level},
        "threads": rayon::current_num_threads(),
        "column_sampling": {"sample_rows": args.sample_rows, "distinct_inputs": args.distinct},
        "peak_rss_gib": peak_rss().map(|b| b as f64 / f64::from(1u32 << 30)),
        "results": results,
    }))
}
