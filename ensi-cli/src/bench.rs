//! `ensi bench ckks`: times the CKKS primitives at a parameter set given on the command line and
//! prints one JSON object in the schema of `bench/README.md`, shared with the OpenFHE side
//! (`bench/openfhe_bench.py`), so `bench/compare.py` can put both side by side.

use clap::Args;
use ensi_ckks::{
    Ciphertext, CkksContext, EvaluationKeySet, Evaluator, GaloisKey, KeyRequest, Parameters,
    ParametersLiteral, PublicKey, RelinearizationKey, SecretDistribution, SecretKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{Map, Value, json};
use std::process::ExitCode;
use std::time::Instant;

/// Every operation `--ops` accepts, in the order they run.
const ALL_OPS: [&str; 14] = [
    "keygen",
    "relin_keygen",
    "rotation_keygen",
    "encode",
    "encrypt",
    "decrypt",
    "add",
    "add_inplace",
    "mul_plain",
    "mul_const",
    "mul_relin",
    "rescale",
    "rotate",
    "hoisted_rotate",
];

/// Rotations timed by `hoisted_rotate`.
const HOISTED: usize = 8;

/// Distinct input ciphertexts per worker in the streamed side-by-side costs.
const STREAM: usize = 6;

/// Options of `ensi bench ckks` (the same names as `bench/openfhe_bench.py`).
#[derive(Args, Debug)]
pub struct CkksBenchArgs {
    /// log2 of the ring degree N.
    #[arg(long, default_value_t = 16)]
    log_n: u32,
    /// Bits of every Q prime, first prime first (overrides --first-mod/--scale-bits/--levels).
    #[arg(long, value_delimiter = ',')]
    q_bits: Option<Vec<u32>>,
    /// Bits of the first prime q_0.
    #[arg(long, default_value_t = 60)]
    first_mod: u32,
    /// Bits of each scaling prime.
    #[arg(long, default_value_t = 50)]
    scale_bits: u32,
    /// Number of scaling primes (the multiplicative depth).
    #[arg(long, default_value_t = 23)]
    levels: usize,
    /// Bits of every special prime P (default: 60-bit primes, as many as the largest digit
    /// needs, which is OpenFHE's rule).
    #[arg(long, value_delimiter = ',')]
    p_bits: Option<Vec<u32>>,
    /// Number of key-switching digits.
    #[arg(long, default_value_t = 3)]
    dnum: usize,
    /// Secret distribution: uniform_ternary (the only one a main key may use).
    #[arg(long, default_value = "uniform_ternary")]
    secret: String,
    /// Worker threads (rayon pool size).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed repetitions per operation.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Untimed calls before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Level the operations run at (number of Q primes - 1; default: the top).
    #[arg(long)]
    level: Option<usize>,
    /// Comma-separated subset of the operations (default: all).
    #[arg(long, value_delimiter = ',')]
    ops: Option<Vec<String>>,
    /// Tiny, insecure parameters and one repetition: a quick check that the harness works.
    #[arg(long)]
    smoke: bool,
    /// Accept parameter sets above the 128-bit bound (needed for small ring degrees).
    #[arg(long)]
    insecure: bool,
    /// log2 of the slot count of `--ops bootstrap` (default: full slots, N/2).
    #[arg(long)]
    boot_log_slots: Option<u32>,
    /// Bootstrapping iterations of `--ops bootstrap`: 1, or 2 for the iterated bootstrap
    /// (META-BTS; twice the time, about twice the precision bits, the same levels left).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=2))]
    boot_iterations: u32,
    /// `--ops bootstrap` in low memory: diagonals encoded per call, EvalMod's halves in
    /// sequence, Galois keys compacted and cut to their levels (under 6 GB at N = 2^16, about
    /// 1.6x the time). `BootstrapParametersLiteral::{low_memory, compact_keys}`.
    #[arg(long)]
    boot_low_memory: bool,
    /// Seed of the random inputs and keys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs the benchmark and prints its JSON on standard output; progress goes to standard error.
pub fn run_ckks(args: &CkksBenchArgs) -> ExitCode {
    match run_ckks_inner(args) {
        Ok(doc) => {
            println!("{doc}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ensi bench ckks: {e}");
            ExitCode::FAILURE
        }
    }
}

fn literal(args: &CkksBenchArgs) -> Result<ParametersLiteral, String> {
    let (log_n, q_bits) = if args.smoke {
        (12, smoke_q_bits())
    } else {
        let q = match &args.q_bits {
            Some(q) if !q.is_empty() => q.clone(),
            Some(_) => return Err("--q-bits needs at least one entry".into()),
            None => core::iter::once(args.first_mod)
                .chain(core::iter::repeat_n(args.scale_bits, args.levels))
                .collect(),
        };
        (args.log_n, q)
    };
    if args.dnum == 0 || args.dnum > q_bits.len() {
        return Err(format!(
            "--dnum {} must be between 1 and the {} Q primes",
            args.dnum,
            q_bits.len()
        ));
    }
    let p_bits = match &args.p_bits {
        Some(p) if !args.smoke => p.clone(),
        _ => {
            // OpenFHE's rule: enough 60-bit primes to exceed the largest digit.
            let alpha = q_bits.len().div_ceil(args.dnum);
            let largest: u32 = q_bits
                .chunks(alpha)
                .map(|c| c.iter().sum())
                .max()
                .unwrap_or(0);
            vec![60; largest.div_ceil(60) as usize]
        }
    };
    let secret = match args.secret.as_str() {
        "uniform_ternary" => SecretDistribution::UniformTernary,
        other => {
            return Err(format!(
                "--secret {other}: only uniform_ternary is supported for a main key"
            ));
        }
    };
    Ok(ParametersLiteral {
        log_n,
        log_q: q_bits,
        log_p: p_bits,
        dnum: args.dnum,
        secret,
        error_std: 3.2,
        log_default_scale: if args.smoke { 50 } else { args.scale_bits },
    })
}

fn smoke_q_bits() -> Vec<u32> {
    core::iter::once(60)
        .chain(core::iter::repeat_n(50, 5))
        .collect()
}

fn selected_ops(args: &CkksBenchArgs) -> Result<Vec<&'static str>, String> {
    let Some(list) = &args.ops else {
        return Ok(ALL_OPS.to_vec());
    };
    for op in list {
        if !ALL_OPS.contains(&op.as_str()) && op != "bootstrap" && op != "lintrans" {
            return Err(format!(
                "unknown operation {op:?}; known: {}",
                ALL_OPS.join(", ")
            ));
        }
    }
    let mut ops: Vec<&'static str> = ALL_OPS
        .iter()
        .copied()
        .filter(|op| list.iter().any(|o| o == op))
        .collect();
    if list.iter().any(|o| o == "bootstrap") {
        ops.push("bootstrap");
    }
    if list.iter().any(|o| o == "lintrans") {
        ops.push("lintrans");
    }
    Ok(ops)
}

/// Median and minimum of `reps` timed calls of `f` after `warmup` untimed ones, in µs.
fn time<T>(warmup: usize, reps: usize, mut f: impl FnMut() -> T) -> (f64, f64, T) {
    let mut last = None;
    for _ in 0..warmup {
        drop(last.take());
        last = Some(f());
    }
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        // The previous result is dropped before the next call (as the OpenFHE driver clears
        // its keys before each), so a call reuses freed memory instead of faulting in fresh
        // pages while the old result is still alive.
        drop(last.take());
        let start = Instant::now();
        let out = f();
        samples.push(start.elapsed().as_secs_f64() * 1e6);
        last = Some(out);
    }
    let (median, min) = median_min(samples);
    // `last` is set: reps.max(1) >= 1 iterations ran.
    (median, min, last.unwrap_or_else(|| unreachable!()))
}

/// Median and minimum of a non-empty sample.
pub(crate) fn median_min(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let h = samples.len() / 2;
    let median = if samples.len() % 2 == 1 {
        samples[h]
    } else {
        (samples[h - 1] + samples[h]) / 2.0
    };
    (median, samples[0])
}

/// `count` values uniform in `[-1, 1)`.
fn uniform_values(rng: &mut ChaCha20Rng, count: usize) -> Vec<f64> {
    (0..count)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect()
}

/// Per-operation time in µs, median and minimum over `reps` rounds, with one independent
/// operation per entry of `states` run side by side on the rayon pool: a round's wall time
/// divided by the number of operations. With one state per worker thread this is the
/// throughput regime of the column kernels, whose output columns run in parallel (each
/// operation alone is also parallel over limbs, which [`time`] measures).
fn concurrent<S: Send>(
    warmup: usize,
    reps: usize,
    states: &mut [S],
    f: impl Fn(&mut S) -> Result<(), ensi_ckks::CkksError> + Sync,
) -> Result<(f64, f64), String> {
    concurrent_streams(warmup, reps, states, 1, f)
}

/// [`concurrent`] where each call of `f` performs `per_call` operations (a worker streaming
/// over distinct inputs, as the column kernels do: their accumulator stays in cache while the
/// inputs come from memory).
fn concurrent_streams<S: Send>(
    warmup: usize,
    reps: usize,
    states: &mut [S],
    per_call: usize,
    f: impl Fn(&mut S) -> Result<(), ensi_ckks::CkksError> + Sync,
) -> Result<(f64, f64), String> {
    use rayon::prelude::*;
    let n = (states.len() * per_call).max(1) as f64;
    let (med, min, last) = time(warmup, reps, || states.par_iter_mut().try_for_each(&f));
    last.map_err(|e| e.to_string())?;
    Ok((med / n, min / n))
}

/// `entry` with the side-by-side time of [`concurrent`] added as `concurrent_us`.
fn entry_concurrent(median: f64, min: f64, reps: usize, concurrent_us: f64) -> Value {
    let mut e = entry(median, min, reps);
    e["concurrent_us"] = json!(concurrent_us);
    e
}

fn entry(median: f64, min: f64, reps: usize) -> Value {
    json!({"median_us": median, "min_us": min, "reps": reps.max(1)})
}

fn run_ckks_inner(args: &CkksBenchArgs) -> Result<Value, String> {
    let literal = literal(args)?;
    let ops = selected_ops(args)?;
    let reps = if args.smoke { 1 } else { args.reps };
    let params = if args.smoke || args.insecure {
        Parameters::new_insecure(literal)
    } else {
        Parameters::new(literal)
    }
    .map_err(|e| format!("{e} (pass --insecure for a test-only set)"))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.max(1))
        .build()
        .map_err(|e| e.to_string())?;
    pool.install(|| {
        let main: Vec<&str> = ops
            .iter()
            .copied()
            .filter(|&o| o != "bootstrap" && o != "lintrans")
            .collect();
        if main.is_empty() && ops == ["lintrans"] {
            return crate::bench_lintrans::bench_lintrans(args.smoke, reps, args.seed);
        }
        let mut doc = measure(params, args, &main, reps)?;
        if ops.contains(&"lintrans") {
            doc["lintrans"] = crate::bench_lintrans::bench_lintrans(args.smoke, reps, args.seed)?;
        }
        if ops.contains(&"bootstrap") {
            doc["bootstrap"] = bench_bootstrap(args, reps)?;
            if let Some(m) = doc.as_object_mut() {
                m.remove("bootstrap_error");
            }
        }
        Ok(doc)
    })
}

/// Bootstrapping at the default N = 2^16 set and parameters (a small insecure chain with
/// `--smoke`), full slots: time per call and per stage, precision bits, levels left.
fn bench_bootstrap(args: &CkksBenchArgs, reps: usize) -> Result<Value, String> {
    use ensi_ckks::{BootstrapKeys, BootstrapParametersLiteral, Bootstrapper, PrecisionStats};
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let (params, lit) = if args.smoke {
        let literal = ParametersLiteral::insecure_bootstrap_test(12, 2, 9);
        let lit = BootstrapParametersLiteral {
            cts_level_budget: 2,
            stc_level_budget: 2,
            ..BootstrapParametersLiteral::default()
        };
        (Parameters::new_insecure(literal).map_err(err)?, lit)
    } else {
        (
            Parameters::new(ParametersLiteral::n16_bootstrappable()).map_err(err)?,
            BootstrapParametersLiteral::default(),
        )
    };
    let lit = BootstrapParametersLiteral {
        log_slots: args.boot_log_slots,
        low_memory: args.boot_low_memory,
        compact_keys: args.boot_low_memory,
        ..lit
    };
    let ctx = CkksContext::new(params).map_err(err)?;
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed ^ 0xb007);
    eprintln!(
        "ensi bench: bootstrapping keys at N = 2^{}",
        ctx.params().log_n()
    );
    let sk = SecretKey::generate(&ctx, &mut rng).map_err(err)?;
    let start = Instant::now();
    let keys = BootstrapKeys::generate(&ctx, &sk, &lit, &mut rng).map_err(err)?;
    let keygen_us = start.elapsed().as_secs_f64() * 1e6;
    let start = Instant::now();
    let bts = Bootstrapper::new(&ctx, lit.clone(), keys).map_err(err)?;
    let setup_us = start.elapsed().as_secs_f64() * 1e6;
    let slots = lit.slots(ctx.n()).map_err(err)?;
    let (key_bytes, transform_bytes) = bts.heap_bytes();
    let peak_rss_setup = crate::bench_layer::peak_rss();
    let values = uniform_values(&mut rng, slots);
    let pt = ctx
        .encode(&values, slots, 0, ctx.params().default_scale())
        .map_err(err)?;
    let pk = PublicKey::generate(&ctx, &sk, &mut rng).map_err(err)?;
    let ct = pk.encrypt(&ctx, &pt, &mut rng).map_err(err)?;
    let mut samples = Vec::new();
    let mut stages: Vec<ensi_ckks::StageTimes> = Vec::new();
    let mut last = None;
    for i in 0..reps.max(1) {
        let start = Instant::now();
        let (out, times) = if args.boot_iterations == 2 {
            bts.bootstrap_twice_timed(&ct, Bootstrapper::SECOND_ITERATION_GAIN)
        } else {
            bts.bootstrap_timed(&ct)
        }
        .map_err(err)?;
        samples.push(start.elapsed().as_secs_f64() * 1e6);
        eprintln!("ensi bench: bootstrap {}: {:.2} s", i + 1, samples[i] / 1e6);
        stages.push(times);
        last = Some(out);
    }
    let out = last.ok_or("no bootstrap ran")?;
    let got = ctx
        .decode(&sk.decrypt(&ctx, &out).map_err(err)?)
        .map_err(err)?;
    let stats = PrecisionStats::real(&values, &got);
    let stage =
        |f: fn(&ensi_ckks::StageTimes) -> f64| median_min(stages.iter().map(f).collect()).0 * 1e6;
    let reps = samples.len();
    let (median_us, min_us) = median_min(samples);
    Ok(json!({
        "median_us": median_us,
        "min_us": min_us,
        "reps": reps,
        "precision_bits": stats.min_bits,
        "median_precision_bits": stats.median_bits,
        "levels_left": out.level(),
        "iterations": args.boot_iterations,
        "slots": slots,
        "setup_us": setup_us,
        "keygen_us": keygen_us,
        "key_bytes": key_bytes,
        "peak_rss_after_setup_bytes": peak_rss_setup,
        "peak_rss_bytes": crate::bench_layer::peak_rss(),
        "galois_keys": bts.evaluator().keys().galois_elements().len(),
        "transform_bytes": transform_bytes,
        "stages_us": {
            "mod_raise": stage(|t| t.mod_raise),
            "coeffs_to_slots": stage(|t| t.coeffs_to_slots),
            "eval_mod": stage(|t| t.eval_mod),
            "slots_to_coeffs": stage(|t| t.slots_to_coeffs),
        },
        "params": {
            "log_n": ctx.params().log_n(),
            "q_bits": ctx.params().q().iter().map(|q| 64 - q.leading_zeros()).collect::<Vec<_>>(),
            "p_bits": ctx.params().p().iter().map(|q| 64 - q.leading_zeros()).collect::<Vec<_>>(),
            "dnum": ctx.key_switch().dnum(),
            "level_budget": [lit.cts_level_budget, lit.stc_level_budget],
            "eval_mod": {"k": lit.k, "double_angle": lit.double_angle, "cos_degree": lit.cos_degree,
                         "arcsine_degree": lit.arcsine_degree},
            "ephemeral_hamming_weight": lit.ephemeral_hamming_weight,
            "low_memory": lit.low_memory,
            "compact_keys": lit.compact_keys,
            "security": if args.smoke { "insecure (smoke)" } else { "128-bit (HE standard)" },
        },
    }))
}

fn measure(
    params: Parameters,
    args: &CkksBenchArgs,
    ops: &[&str],
    reps: usize,
) -> Result<Value, String> {
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let wall = Instant::now();
    let ctx = CkksContext::new(params).map_err(err)?;
    let level = args.level.unwrap_or(ctx.max_level());
    if level > ctx.max_level() {
        return Err(format!(
            "--level {level} is above the top level {}",
            ctx.max_level()
        ));
    }
    let warm = args.warmup;
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let mut out = Map::new();
    let has = |op: &str| ops.contains(&op);
    eprintln!(
        "ensi bench: N = 2^{}, level {level}, {} thread(s)",
        ctx.params().log_n(),
        args.threads
    );

    let (med, min, pair) = time(warm, if has("keygen") { reps } else { 0 }, || {
        let sk = SecretKey::generate(&ctx, &mut rng).map_err(err)?;
        let pk = PublicKey::generate(&ctx, &sk, &mut rng).map_err(err)?;
        Ok::<_, String>((sk, pk))
    });
    let (sk, pk) = pair?;
    if has("keygen") {
        out.insert("keygen".into(), entry(med, min, reps));
    }
    let mut keys = EvaluationKeySet::new();
    if has("relin_keygen") || has("mul_relin") || has("rescale") {
        let (warm_here, reps_here) = if has("relin_keygen") {
            (warm, reps)
        } else {
            (0, 0)
        };
        let (med, min, rlk) = time(warm_here, reps_here, || {
            RelinearizationKey::generate(&ctx, &sk, &mut rng)
        });
        keys.insert(ensi_ckks::EvaluationKey::Relinearization(rlk.map_err(err)?));
        if has("relin_keygen") {
            out.insert("relin_keygen".into(), entry(med, min, reps));
        }
    }
    if has("rotation_keygen") {
        let g1 = ctx.rotation_galois_element(1);
        let (med, min, gk) = time(warm, reps, || GaloisKey::generate(&ctx, &sk, g1, &mut rng));
        gk.map_err(err)?;
        out.insert("rotation_keygen".into(), entry(med, min, reps));
    }
    let steps: Vec<isize> = (1..=HOISTED as isize).collect();
    if has("rotate") || has("hoisted_rotate") {
        let request = KeyRequest::new().with_rotations(&ctx, &steps);
        let mut sink = EvaluationKeySet::new();
        ensi_ckks::generate_evaluation_keys(&ctx, &sk, &request, &mut sink, &mut rng)
            .map_err(err)?;
        for g in sink.galois_elements() {
            if let Some(k) = sink.galois(g) {
                keys.insert(ensi_ckks::EvaluationKey::Galois(k.clone()));
            }
        }
    }
    let eval = Evaluator::new(&ctx, keys).map_err(err)?;

    let slots = ctx.n() / 2;
    let scale = ctx.params().default_scale();
    let values = uniform_values(&mut rng, slots);
    let (med, min, pt) = time(warm, reps, || ctx.encode(&values, slots, level, scale));
    let pt = pt.map_err(err)?;
    // One operation per worker, side by side (see `concurrent`).
    let mut workers = vec![(); args.threads];
    if has("encode") {
        let (side, _) = concurrent(warm, reps, &mut workers, |_| {
            ctx.encode(&values, slots, level, scale).map(drop)
        })?;
        out.insert("encode".into(), entry_concurrent(med, min, reps, side));
    }
    let (med, min, ct) = time(warm, reps, || pk.encrypt(&ctx, &pt, &mut rng));
    let ct = ct.map_err(err)?;
    if has("encrypt") {
        out.insert("encrypt".into(), entry(med, min, reps));
    }
    let ct2 = pk.encrypt(&ctx, &pt, &mut rng).map_err(err)?;
    // Distinct inputs for the streamed side-by-side costs, `STREAM` per worker.
    let stream: Vec<Ciphertext> = if has("add_inplace") || has("mul_const") {
        (0..STREAM * args.threads)
            .map(|_| pk.encrypt(&ctx, &pt, &mut rng))
            .collect::<Result<_, _>>()
            .map_err(err)?
    } else {
        Vec::new()
    };
    let mut checks = Map::new();
    if has("decrypt") {
        let (med, min, dec) = time(warm, reps, || {
            sk.decrypt(&ctx, &ct).and_then(|p| ctx.decode(&p))
        });
        checks.insert("fresh".into(), json!(max_err(&values, &dec.map_err(err)?)));
        out.insert("decrypt".into(), entry(med, min, reps));
    }
    if has("add") {
        let (med, min, _) = time(warm, reps, || eval.add(&ct, &ct2));
        out.insert("add".into(), entry(med, min, reps));
    }
    if has("add_inplace") {
        // ensi only: `acc += ct` without a new ciphertext, as the layers accumulate (the
        // planner of `ensi bench matmul` reads it; `add` above allocates its output).
        let mut acc = ct.clone();
        let (med, min, _) = time(warm, reps, || eval.add_assign(&mut acc, &ct2));
        // Side by side: each worker adds a stream of distinct ciphertexts into its own
        // accumulator (the signed-sum kernel's access pattern).
        let mut accs: Vec<(Ciphertext, usize)> =
            (0..args.threads).map(|w| (ct.clone(), w)).collect();
        let (side, _) = concurrent_streams(warm, reps, &mut accs, STREAM, |(a, w)| {
            stream[*w * STREAM..(*w + 1) * STREAM]
                .iter()
                .try_for_each(|x| eval.add_assign(a, x))
        })?;
        out.insert("add_inplace".into(), entry_concurrent(med, min, reps, side));
    }
    if has("mul_plain") {
        let (med, min, _) = time(warm, reps, || eval.mul_plain(&ct, &pt));
        let (side, _) = concurrent(warm, reps, &mut workers, |_| {
            eval.mul_plain(&ct, &pt).map(drop)
        })?;
        out.insert("mul_plain".into(), entry_concurrent(med, min, reps, side));
    }
    if has("mul_const") {
        // ensi only (no OpenFHE counterpart in the peer table): a real constant encoded at
        // the last prime, no rescale. The planner of `ensi bench matmul` reads it.
        let (med, min, _) = time(warm, reps, || eval.mul_const(&ct, 0.6180));
        // Side by side, each worker over its own stream of distinct ciphertexts.
        let mut ids: Vec<usize> = (0..args.threads).collect();
        let (side, _) = concurrent_streams(warm, reps, &mut ids, STREAM, |w| {
            stream[*w * STREAM..(*w + 1) * STREAM]
                .iter()
                .try_for_each(|x| eval.mul_const(x, 0.6180).map(drop))
        })?;
        // The NEXUS kernel's step: a constant product added at once into an accumulator
        // (the product is still in cache when it is added), both operations per call.
        let product = eval.mul_const(&ct, 0.6180).map_err(err)?;
        let mut accs: Vec<(Ciphertext, usize)> =
            (0..args.threads).map(|w| (product.clone(), w)).collect();
        let (pair, _) = concurrent_streams(warm, reps, &mut accs, STREAM, |(a, w)| {
            stream[*w * STREAM..(*w + 1) * STREAM]
                .iter()
                .try_for_each(|x| eval.add_assign(a, &eval.mul_const(x, 0.6180)?))
        })?;
        let mut e = entry_concurrent(med, min, reps, side);
        e["concurrent_then_add_us"] = json!(pair);
        out.insert("mul_const".into(), e);
    }
    if has("mul_relin") || has("rescale") {
        let reps_here = if has("mul_relin") { reps } else { 0 };
        let (med, min, prod) = time(warm, reps_here, || eval.mul_relin(&ct, &ct2));
        let prod: Ciphertext = prod.map_err(err)?;
        if has("mul_relin") {
            out.insert("mul_relin".into(), entry(med, min, reps));
        }
        if has("rescale") && level > 0 {
            let (med, min, r) = time(warm, reps, || eval.rescale(&prod));
            let r = r.map_err(err)?;
            let got = ctx
                .decode(&sk.decrypt(&ctx, &r).map_err(err)?)
                .map_err(err)?;
            let sq: Vec<f64> = values.iter().map(|v| v * v).collect();
            checks.insert("mul_rescale".into(), json!(max_err(&sq, &got)));
            let (side, _) =
                concurrent(warm, reps, &mut workers, |_| eval.rescale(&prod).map(drop))?;
            out.insert("rescale".into(), entry_concurrent(med, min, reps, side));
        }
    }
    if has("rotate") {
        let (med, min, r) = time(warm, reps, || eval.rotate(&ct, 1));
        let got = ctx
            .decode(&sk.decrypt(&ctx, &r.map_err(err)?).map_err(err)?)
            .map_err(err)?;
        let expect: Vec<f64> = (0..slots).map(|i| values[(i + 1) % slots]).collect();
        checks.insert("rotate".into(), json!(max_err(&expect, &got)));
        let (side, _) = concurrent(warm, reps, &mut workers, |_| eval.rotate(&ct, 1).map(drop))?;
        out.insert("rotate".into(), entry_concurrent(med, min, reps, side));
    }
    if has("hoisted_rotate") {
        let (pre_med, _, dec) = time(warm, reps, || eval.decompose_for_rotation(&ct));
        let dec = dec.map_err(err)?;
        // The schema's `median_us` is the whole batch over its rotations, the shared
        // decomposition included (as the OpenFHE side times it).
        let (med, min, rots) = time(warm, reps, || {
            let dec = eval.decompose_for_rotation(&ct)?;
            steps
                .iter()
                .map(|&s| eval.apply_galois_hoisted(&ct, &dec, ctx.rotation_galois_element(s)))
                .collect::<Result<Vec<_>, _>>()
        });
        let rots = rots.map_err(err)?;
        let last = rots.last().ok_or("no rotation")?;
        let got = ctx
            .decode(&sk.decrypt(&ctx, last).map_err(err)?)
            .map_err(err)?;
        let expect: Vec<f64> = (0..slots).map(|i| values[(i + HOISTED) % slots]).collect();
        checks.insert("hoisted_rotate".into(), json!(max_err(&expect, &got)));
        let per = HOISTED as f64;
        // The batch's rotations side by side (as `Evaluator::rotate_hoisted` runs them).
        let mut batch: Vec<isize> = steps.clone();
        let (side, _) = concurrent(warm, reps, &mut batch, |&mut s| {
            eval.apply_galois_hoisted(&ct, &dec, ctx.rotation_galois_element(s))
                .map(drop)
        })?;
        out.insert(
            "hoisted_rotate".into(),
            json!({"median_us": med / per, "min_us": min / per, "reps": reps.max(1),
                   "rotations": HOISTED, "hoisted_precompute_us": pre_med,
                   "concurrent_us": side}),
        );
    }
    for (name, e) in &checks {
        if e.as_f64().is_none_or(|e| e >= 1e-3) {
            return Err(format!("check {name} failed: max abs error {e}"));
        }
    }
    let backend = ctx.ring().plans()[0].backend();
    Ok(json!({
        "impl": "ensi",
        "version": env!("CARGO_PKG_VERSION"),
        "threads": args.threads.max(1),
        "params": {
            "log_n": ctx.params().log_n(),
            "q_bits": ctx.params().q().iter().map(|q| 64 - q.leading_zeros()).collect::<Vec<_>>(),
            "p_bits": ctx.params().p().iter().map(|q| 64 - q.leading_zeros()).collect::<Vec<_>>(),
            "q_primes": ctx.params().q(),
            "p_primes": ctx.params().p(),
            "dnum": ctx.key_switch().dnum(),
            "secret": args.secret,
            "level": level,
        },
        "ops": out,
        "bootstrap": null,
        "meta": {
            "ntt_backend": format!("{backend:?}"),
            "checks_max_abs_err": checks,
            "warmup": warm,
            "wall_s": wall.elapsed().as_secs_f64(),
        },
    }))
}

fn max_err(expected: &[f64], got: &[f64]) -> f64 {
    expected
        .iter()
        .zip(got)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}
