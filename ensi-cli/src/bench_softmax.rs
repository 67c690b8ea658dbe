//! `ensi bench softmax`: sigmoid attention weights (ENSI) against a homomorphic softmax
//! (NEXUS kind) on the same `n x n` scores of one head, at the 128-bit N = 2^16 set, each from
//! a freshly bootstrapped level 10, bootstraps included; and the effect of each approximation
//! on the embedded model's logits (f64 models of the circuits in the plaintext forward pass).
//!
//! The scores are the embedded model's (layer 0, head 0) on a prompt of `n` random bytes,
//! row-major in `n * n` slots (replicated to fill them). Both circuits are calibrated on that
//! prompt's scores (interval widened by 10 %), as the layers are.
//!
//! * **Sigmoid** (degree 16 and 31): one Chebyshev polynomial of `sigmoid(s - ln n)` on the
//!   calibrated interval; the causal mask goes on the value side in the layer, so here only
//!   the visible entries are compared.
//! * **Softmax** without a max (a homomorphic circuit cannot take one): with `b` the top of
//!   the calibrated interval, `e'_tj = (c_t m_tj ((s_tj - b) / 2^r + 1))^(2^r)`
//!   (`r` squarings: `exp(s - b) / (t + 1)` for `c_t = (t + 1)^(-1/2^r)`; the causal mask
//!   `m` is folded into the same plaintext product); the row means `z_t = sum_j e'_tj` by
//!   `log2 n` rotate-and-adds, kept in column 0 by a mask and replicated by `log2 n` more;
//!   `z` is bootstrapped; `1/z` by a Chebyshev polynomial on the calibrated range of `z` and
//!   one Newton step `y (2 - z y)`; the weights `e' y`. The output is at level 1, so the layer
//!   would need one more bootstrap before `A V` and the next norm: it is run and counted.

use crate::bench_layer::{ops_json, peak_rss, run_json};
use crate::run::demo_parameters;
use ensi_bitnet::ops::{AttentionKind, RowWeights};
use ensi_bitnet::{ForwardOptions, Model, embedded_model};
use ensi_ckks::{
    BootstrapKeys, BootstrapOptions, Bootstrapper, ChebyshevPoly, Ciphertext, CkksContext,
    EvaluationKey, Evaluator, GaloisKey, SecretKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Instant;

/// Options of `ensi bench softmax`.
#[derive(clap::Args, Debug)]
pub struct SoftmaxBenchArgs {
    /// Sequence length n (a power of two; n * n must fit the slots).
    #[arg(long, default_value_t = 128)]
    tokens: usize,
    /// Squarings of the exponential's `(1 + x / 2^r)^(2^r)`.
    #[arg(long, default_value_t = 7)]
    exp_squarings: u32,
    /// Degree of the inverse's initial Chebyshev polynomial.
    #[arg(long, default_value_t = 15)]
    inverse_degree: usize,
    /// Use this score interval LO,HI for both circuits instead of the calibrated one (a real
    /// model's scores spread wider than the embedded model's; ENSI's sigmoid uses [-10, 11]).
    #[arg(long, value_name = "LO,HI")]
    score_interval: Option<String>,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the prompt and the keys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// N = 2^13, INSECURE, n = 32: a quick check of the harness.
    #[arg(long)]
    smoke: bool,
}

/// Runs the benchmark and prints its JSON on standard output; progress goes to standard error.
pub fn run_softmax(args: &SoftmaxBenchArgs) -> ExitCode {
    run_json("softmax", args.threads, || bench_softmax(args))
}

/// The constants both the circuit and its f64 model use.
#[derive(Clone, Copy, Debug)]
struct SoftmaxCircuit {
    /// Top of the score interval (the exponential's shift).
    top: f64,
    /// `r`: squarings.
    squarings: u32,
    /// The calibrated range of the row means `z`.
    z_lo: f64,
    z_hi: f64,
    inverse_degree: usize,
}

impl SoftmaxCircuit {
    fn inverse_poly(&self) -> ChebyshevPoly {
        ChebyshevPoly::interpolate(|z| 1.0 / z, self.z_lo, self.z_hi, self.inverse_degree)
    }

    /// Sets the range of the row means `z` from these score matrices (the visible entries),
    /// widened (below by 1.5x, above by 1.1x); returns the range seen.
    fn calibrate_z(&mut self, heads: &[ensi_bitnet::Matrix<f64>]) -> (f64, f64) {
        let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
        for h in heads {
            for t in 0..h.rows() {
                let z: f64 = (0..=t).map(|j| self.exp_row(h.get(t, j), t)).sum();
                lo = lo.min(z);
                hi = hi.max(z);
            }
        }
        self.z_lo = lo / 1.5;
        self.z_hi = hi * 1.1;
        (lo, hi)
    }

    /// `e'` of one score at row `t`: `(c_t ((s - top) / 2^r + 1))^(2^r)`.
    fn exp_row(&self, s: f64, t: usize) -> f64 {
        let r = f64::from(1u32 << self.squarings);
        let c = ((t + 1) as f64).powf(-1.0 / r);
        let mut u = c * ((s - self.top) / r + 1.0);
        for _ in 0..self.squarings {
            u *= u;
        }
        u
    }

    /// The f64 model of the whole circuit on one row's visible scores (row `t = len - 1`).
    fn weights(&self, scores: &[f64], out: &mut [f64]) {
        let t = scores.len() - 1;
        for (o, &s) in out.iter_mut().zip(scores) {
            *o = self.exp_row(s, t);
        }
        let z: f64 = out.iter().sum();
        let y0 = self.inverse_poly().eval(z);
        let y = y0 * (2.0 - z * y0);
        for o in out.iter_mut() {
            *o *= y;
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Logits of the embedded model under `kind` on `tokens`.
fn logits(model: &Model, tokens: &[u32], kind: AttentionKind) -> Result<Vec<f64>, String> {
    let t = model
        .forward::<f64>(tokens, &ForwardOptions::new(kind, false))
        .map_err(|e| e.to_string())?;
    Ok(t.last_logits().to_vec())
}

/// The largest logit difference relative to the largest logit magnitude, and whether the
/// top tokens agree.
fn logit_effect(exact: &[f64], approx: &[f64]) -> Value {
    let max = exact.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = exact
        .iter()
        .zip(approx)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    let top = |v: &[f64]| ensi_bitnet::argmax(v);
    json!({"max_relative_difference": diff / max, "top1_agrees": top(exact) == top(approx)})
}

#[allow(clippy::too_many_lines)]
fn bench_softmax(args: &SoftmaxBenchArgs) -> Result<Value, String> {
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let n = if args.smoke { 32 } else { args.tokens };
    if !n.is_power_of_two() || n < 2 {
        return Err("--tokens must be a power of two, at least 2".into());
    }
    let model = embedded_model().map_err(|e| e.to_string())?;
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let tokens: Vec<u32> = (0..n).map(|_| rng.next_u32() % 256).collect();
    // The scores of layer 0, head 0 (the same under either attention kind: layer 0's input is
    // the embedding).
    let trace = model
        .forward::<f64>(&tokens, &ForwardOptions::new(AttentionKind::Sigmoid, false))
        .map_err(|e| e.to_string())?;
    let scores = &trace.layers[0].scores[0];
    let visible = |f: &mut dyn FnMut(usize, usize, f64)| {
        for t in 0..n {
            for j in 0..=t {
                f(t, j, scores.get(t, j));
            }
        }
    };
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    visible(&mut |_, _, s| {
        lo = lo.min(s);
        hi = hi.max(s);
    });
    let margin = 0.1 * (hi - lo);
    let (a, b) = match &args.score_interval {
        None => (lo - margin, hi + margin),
        Some(text) => {
            let v: Vec<f64> = text
                .split(',')
                .map(|x| x.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("--score-interval {text}: give LO,HI"))?;
            match v.as_slice() {
                [x, y] if x.is_finite() && y.is_finite() && x <= &lo && y >= &hi => (*x, *y),
                _ => {
                    return Err(format!(
                        "--score-interval {text}: need LO <= {lo:.3} and HI >= {hi:.3} (the \
                         prompt's scores)"
                    ));
                }
            }
        }
    };
    let bias = -(n as f64).ln();
    // The softmax circuit's calibration: the range of z over this prompt's rows.
    let mut circuit = SoftmaxCircuit {
        top: b,
        squarings: args.exp_squarings,
        z_lo: 0.0,
        z_hi: 0.0,
        inverse_degree: args.inverse_degree,
    };
    let (z_lo, z_hi) = circuit.calibrate_z(std::slice::from_ref(scores));
    eprintln!(
        "ensi bench softmax: {n} x {n} scores in [{lo:.2}, {hi:.2}]; row means z in \
         [{z_lo:.3e}, {z_hi:.3e}]"
    );
    // Parameters and keys: bootstrapping, the row sums' rotations (truncated).
    let (params, literal) = demo_parameters(args.smoke.then_some(13))?;
    let ctx = CkksContext::new(params).map_err(err)?;
    let slots = ctx.n() / 2;
    if n * n > slots {
        return Err(format!("{n} x {n} scores do not fit {slots} slots"));
    }
    let level = ctx.max_level() - literal.depth();
    let sk = SecretKey::generate(&ctx, &mut rng).map_err(err)?;
    let mut keys = BootstrapKeys::generate(&ctx, &sk, &literal, &mut rng).map_err(err)?;
    let steps: Vec<isize> = (0..n.trailing_zeros())
        .flat_map(|i| [1isize << i, -(1isize << i)])
        .collect();
    for &s in &steps {
        let g = ctx.rotation_galois_element(s);
        if keys.evaluation.galois(g).is_none() {
            let mut key = GaloisKey::generate(&ctx, &sk, g, &mut rng).map_err(err)?;
            key.truncate(&ctx, level).map_err(err)?;
            keys.insert(EvaluationKey::Galois(key));
        }
    }
    let bts = Bootstrapper::new(&ctx, literal, keys).map_err(err)?;
    let eval: &Evaluator = bts.evaluator();
    let delta = ctx.params().default_scale();
    // One untimed bootstrap: the first one touches lazily built tables.
    let zeros = ctx
        .encode(&vec![0.0; slots], slots, 0, delta)
        .map_err(err)?;
    bts.bootstrap(&sk.encrypt(&ctx, &zeros, &mut rng).map_err(err)?)
        .map_err(err)?;
    // Row-major scores, replicated over the slots.
    let slot_values = |f: &dyn Fn(usize, usize) -> f64| -> Vec<f64> {
        (0..slots)
            .map(|i| {
                let k = i % (n * n);
                f(k / n, k % n)
            })
            .collect()
    };
    let x_slots = slot_values(&|t, j| scores.get(t, j));
    let x = sk
        .encrypt(
            &ctx,
            &ctx.encode(&x_slots, slots, level, delta).map_err(err)?,
            &mut rng,
        )
        .map_err(err)?;
    let decrypt = |ct: &Ciphertext| -> Result<Vec<f64>, String> {
        ctx.decode(&sk.decrypt(&ctx, ct).map_err(err)?).map_err(err)
    };
    // Bits of the visible entries against `want`.
    let precision = |got: &[f64], want: &dyn Fn(usize, usize) -> f64| -> f64 {
        let (mut err, mut max) = (0.0f64, 0.0f64);
        visible(&mut |t, j, _| {
            let w = want(t, j);
            max = max.max(w.abs());
            err = err.max((got[t * n + j] - w).abs());
        });
        -(err / max).log2()
    };
    let mut results = serde_json::Map::new();
    // Sigmoid, degree 16 and 31.
    for degree in [16usize, 31] {
        let poly = ensi_nn::attention::sigmoid_poly(bias, a, b, degree);
        // The median of three runs after a warm-up one (the first touches lazily built tables).
        eval.evaluate_chebyshev(&x, &poly, delta).map_err(err)?;
        let before = eval.op_count();
        let mut times = Vec::new();
        let mut out = None;
        for _ in 0..3 {
            let clock = Instant::now();
            out = Some(eval.evaluate_chebyshev(&x, &poly, delta).map_err(err)?.0);
            times.push(clock.elapsed().as_secs_f64());
        }
        let w = out.ok_or("no run")?;
        times.sort_by(f64::total_cmp);
        let secs = times[1];
        let ops = {
            let all = eval.op_count() - before;
            let mut one = ensi_ckks::OpCount::default();
            for (o, a) in [
                (&mut one.add, all.add),
                (&mut one.const_mul, all.const_mul),
                (&mut one.plain_mul, all.plain_mul),
                (&mut one.tensor, all.tensor),
                (&mut one.relinearize, all.relinearize),
                (&mut one.rescale, all.rescale),
            ] {
                *o = a / 3;
            }
            one
        };
        let bits = precision(&decrypt(&w)?, &|t, j| sigmoid(scores.get(t, j) + bias));
        eprintln!(
            "ensi bench softmax: sigmoid degree {degree}: {secs:.2} s, level {} -> {}, \
             {bits:.1} bits",
            level,
            w.level()
        );
        results.insert(
            format!("sigmoid_{degree}"),
            json!({"seconds": secs, "bootstraps": 0, "output_level": w.level(),
                   "levels_used": level - w.level(), "precision_bits": bits,
                   "ops": ops_json(&ops)}),
        );
    }
    // Softmax.
    let before = eval.op_count();
    let clock = Instant::now();
    let r = f64::from(1u32 << circuit.squarings);
    let q_l = ctx.params().q()[x.level()] as f64;
    let causal = |t: usize, j: usize| if j <= t { 1.0 } else { 0.0 };
    let c_row = |t: usize| ((t + 1) as f64).powf(-1.0 / r);
    let mult = slot_values(&|t, j| causal(t, j) * c_row(t) / r);
    let shift = slot_values(&|t, j| causal(t, j) * c_row(t) * (1.0 - circuit.top / r));
    let mut u = eval
        .mul_plain(&x, &ctx.encode(&mult, slots, x.level(), q_l).map_err(err)?)
        .map_err(err)?;
    u = eval.rescale(&u).map_err(err)?;
    let u_scale = u.scale();
    u = eval
        .add_plain(
            &u,
            &ctx.encode(&shift, slots, u.level(), u_scale).map_err(err)?,
        )
        .map_err(err)?;
    for _ in 0..circuit.squarings {
        u = eval.mul_relin_rescale(&u, &u).map_err(err)?;
    }
    let e = u; // e' = exp(s - top) / (t + 1), masked
    // Row sums into column 0, masked, replicated.
    let mut z = e.clone();
    for i in 0..n.trailing_zeros() {
        let rot = eval.rotate(&z, 1 << i).map_err(err)?;
        eval.add_assign(&mut z, &rot).map_err(err)?;
    }
    let first = slot_values(&|_, j| if j == 0 { 1.0 } else { 0.0 });
    let q_z = ctx.params().q()[z.level()] as f64;
    z = eval
        .mul_plain(&z, &ctx.encode(&first, slots, z.level(), q_z).map_err(err)?)
        .map_err(err)?;
    z = eval.rescale(&z).map_err(err)?;
    for i in 0..n.trailing_zeros() {
        let rot = eval.rotate(&z, -(1 << i)).map_err(err)?;
        eval.add_assign(&mut z, &rot).map_err(err)?;
    }
    let z_level = z.level();
    let any_scale = BootstrapOptions::default();
    let z = bts.bootstrap_with(&z, &any_scale).map_err(err)?;
    // 1/z: the Chebyshev start and one Newton step.
    let (y0, _) = eval
        .evaluate_chebyshev(&z, &circuit.inverse_poly(), delta)
        .map_err(err)?;
    let zy = eval
        .mul_relin_rescale(&eval.drop_to_level(&z, y0.level()).map_err(err)?, &y0)
        .map_err(err)?;
    let two_minus = eval
        .add_const(&eval.neg(&zy).map_err(err)?, 2.0)
        .map_err(err)?;
    let y = eval
        .mul_relin_rescale(
            &eval.drop_to_level(&y0, two_minus.level()).map_err(err)?,
            &two_minus,
        )
        .map_err(err)?;
    let lvl = y.level().min(e.level());
    let p = eval
        .mul_relin_rescale(
            &eval.drop_to_level(&e, lvl).map_err(err)?,
            &eval.drop_to_level(&y, lvl).map_err(err)?,
        )
        .map_err(err)?;
    let circuit_s = clock.elapsed().as_secs_f64();
    let circuit_ops = eval.op_count() - before;
    let p_level = p.level();
    let got = decrypt(&p)?;
    let softmax = &trace.layers[0].scores[0];
    let exact_softmax = |t: usize, j: usize| {
        let row = &softmax.row(t)[..=t];
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f64 = row.iter().map(|v| (v - m).exp()).sum();
        (row[j] - m).exp() / sum
    };
    let bits = precision(&got, &exact_softmax);
    let model_bits = {
        let mut w = vec![0.0; n];
        let mut worst = (0.0f64, 0.0f64);
        for t in 0..n {
            circuit.weights(&softmax.row(t)[..=t], &mut w[..=t]);
            for (j, &wj) in w.iter().enumerate().take(t + 1) {
                let e = exact_softmax(t, j);
                worst = (worst.0.max((wj - e).abs()), worst.1.max(e.abs()));
            }
        }
        -(worst.0 / worst.1).log2()
    };
    // The refresh the layer needs before A V and the next norm.
    let clock = Instant::now();
    let refreshed = bts.bootstrap_with(&p, &any_scale).map_err(err)?;
    let refresh_s = clock.elapsed().as_secs_f64();
    let refreshed_bits = precision(&decrypt(&refreshed)?, &exact_softmax);
    eprintln!(
        "ensi bench softmax: softmax: {circuit_s:.2} s with 1 bootstrap (z at level {z_level}), \
         output level {p_level}, {bits:.1} bits (its f64 model: {model_bits:.1}); the refresh \
         to level {}: {refresh_s:.2} s more, {refreshed_bits:.1} bits",
        refreshed.level()
    );
    results.insert(
        "softmax".into(),
        json!({
            "seconds": circuit_s, "bootstraps": 1, "output_level": p_level,
            "seconds_outside_bootstrapping": circuit_s - circuit_ops.bootstrap_micros as f64 * 1e-6,
            "precision_bits": bits, "f64_model_bits": model_bits,
            "with_refresh": {"seconds": circuit_s + refresh_s, "bootstraps": 2,
                             "output_level": refreshed.level(), "precision_bits": refreshed_bits},
            "ops": ops_json(&circuit_ops),
            "exp_squarings": circuit.squarings, "inverse_degree": circuit.inverse_degree,
            "z_range": [circuit.z_lo, circuit.z_hi],
        }),
    );
    let ratio = |k: &str| -> Option<f64> {
        Some(
            results["softmax"]["with_refresh"]["seconds"].as_f64()?
                / results.get(k)?["seconds"].as_f64()?,
        )
    };
    let ratios = json!({
        "softmax_with_refresh_over_sigmoid_16": ratio("sigmoid_16"),
        "softmax_with_refresh_over_sigmoid_31": ratio("sigmoid_31"),
        "softmax_circuit_over_sigmoid_16": Some(circuit_s / results["sigmoid_16"]["seconds"].as_f64().unwrap_or(f64::NAN)),
        "softmax_without_bootstrapping_over_sigmoid_16": Some(
            (circuit_s - circuit_ops.bootstrap_micros as f64 * 1e-6)
                / results["sigmoid_16"]["seconds"].as_f64().unwrap_or(f64::NAN)
        ),
    });
    // The effect on the embedded model's logits (f64 models of the circuits, every layer and
    // head, intervals from this prompt's scores over all layers).
    let (mut all_lo, mut all_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for l in &trace.layers {
        for h in &l.scores {
            for t in 0..n {
                for j in 0..=t {
                    all_lo = all_lo.min(h.get(t, j));
                    all_hi = all_hi.max(h.get(t, j));
                }
            }
        }
    }
    let m = 0.1 * (all_hi - all_lo);
    let (la, lb) = (all_lo - m, all_hi + m);
    let sig_poly_kind = |degree: usize| -> AttentionKind {
        // sigmoid(s - ln n) as a polynomial of s on [la, lb].
        let poly = ensi_nn::attention::sigmoid_poly(bias, la, lb, degree);
        let f: Box<RowWeights> = Box::new(move |s: &[f64], _len: usize, out: &mut [f64]| {
            for (o, &v) in out.iter_mut().zip(s) {
                *o = poly.eval(v);
            }
        });
        AttentionKind::Custom(Box::leak(f))
    };
    let mut soft_circuit = circuit;
    soft_circuit.top = lb;
    let heads: Vec<ensi_bitnet::Matrix<f64>> = trace
        .layers
        .iter()
        .flat_map(|l| l.scores.iter().cloned())
        .collect();
    soft_circuit.calibrate_z(&heads);
    let soft_f: Box<RowWeights> = Box::new(move |s: &[f64], _len: usize, out: &mut [f64]| {
        soft_circuit.weights(s, out);
    });
    let soft_kind = AttentionKind::Custom(Box::leak(soft_f));
    let exact_sig = logits(&model, &tokens, AttentionKind::SigmoidBias(bias))?;
    let exact_soft = logits(&model, &tokens, AttentionKind::Softmax)?;
    let logit = json!({
        "sigmoid_16_vs_sigmoid": logit_effect(&exact_sig, &logits(&model, &tokens, sig_poly_kind(16))?),
        "sigmoid_31_vs_sigmoid": logit_effect(&exact_sig, &logits(&model, &tokens, sig_poly_kind(31))?),
        "he_softmax_vs_softmax": logit_effect(&exact_soft, &logits(&model, &tokens, soft_kind)?),
        "sigmoid_vs_softmax": logit_effect(&exact_soft, &exact_sig),
        "note": "f64 models of the circuits (approximation only, no CKKS noise) in every layer \
                 and head of the embedded model; the embedded model's random weights were not \
                 trained with either kind",
    });
    Ok(json!({
        "bench": "softmax",
        "tokens": n,
        "params": {"log_n": ctx.params().log_n(), "secure": !args.smoke, "level": level},
        "threads": rayon::current_num_threads(),
        "score_interval": [a, b],
        "prompt_scores": [lo, hi],
        "results": results,
        "ratios": ratios,
        "logit_effect": logit,
        "peak_rss_gib": peak_rss().map(|b| b as f64 / f64::from(1u32 << 30)),
    }))
}
