//! `ensi bench ckks --ops lintrans`: a ternary matrix times an encrypted, periodically
//! replicated vector at N = 2^16, with the diagonals encoded once and kept (cached) against
//! encoded on the fly, one at a time (streamed): time, memory of the cached diagonals, the
//! operations executed (equal for both) and the precision against a dense f64 product.
//!
//! Parameters: N = 2^16, Q = 60 + 5 x 50 bits, P = 2 x 60 bits, 3 digits (128-bit secure), the
//! product at level 3; `--smoke` uses N = 2^12 and small matrices.

use crate::bench::median_min;
use ensi_ckks::{
    CkksContext, EvaluationKeySet, Evaluator, KeyRequest, LinearTransform, Parameters,
    ParametersLiteral, PrecisionStats, ReplicatedMatrix, SecretDistribution, SecretKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{Value, json};
use std::time::Instant;

/// The diagonals of a replicated matrix as a plain linear transform (for the cached path).
fn cached_transform<F: Fn(usize, usize) -> f64>(
    rm: &ReplicatedMatrix<F>,
) -> Result<LinearTransform, ensi_ckks::CkksError> {
    let shape = rm.shape()?;
    LinearTransform::from_diagonals(
        shape.slots(),
        shape
            .indices()
            .iter()
            .map(|&k| (k as isize, rm.diagonal(k))),
    )
}

/// Runs the two sizes (128 x 128 and 1536 x 1536; 16 and 96 with `--smoke`).
pub fn bench_lintrans(smoke: bool, reps: usize, seed: u64) -> Result<Value, String> {
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let (log_n, sizes) = if smoke {
        (12, vec![16usize, 96])
    } else {
        (16, vec![128usize, 1536])
    };
    let mut log_q = vec![60u32];
    log_q.extend([50u32; 5]);
    let literal = ParametersLiteral {
        log_n,
        log_q,
        log_p: vec![60, 60],
        dnum: 3,
        secret: SecretDistribution::UniformTernary,
        error_std: 3.2,
        log_default_scale: 50,
    };
    let params = if smoke {
        Parameters::new_insecure(literal)
    } else {
        Parameters::new(literal)
    }
    .map_err(err)?;
    let ctx = CkksContext::new(params).map_err(err)?;
    let slots = ctx.n() / 2;
    let level = 3;
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x11e4);
    let sk = SecretKey::generate(&ctx, &mut rng).map_err(err)?;
    let mut results = Vec::new();
    for d in sizes {
        // Ternary weights, about a third zero, times a per-tensor scale.
        let weights: Vec<i8> = (0..d * d).map(|_| (rng.next_u32() % 3) as i8 - 1).collect();
        let scale = 1.0 / (d as f64).sqrt();
        let rm = ReplicatedMatrix::new(slots, d, d, |i, j| f64::from(weights[i * d + j]) * scale)
            .map_err(err)?;
        let mut request = KeyRequest::new();
        request.galois_elements = rm.galois_elements(&ctx).map_err(err)?;
        eprintln!(
            "ensi bench: lintrans {d} x {d}: {} rotation keys",
            request.galois_elements.len()
        );
        let keys = EvaluationKeySet::generate(&ctx, &sk, &request, &mut rng).map_err(err)?;
        let eval = Evaluator::new(&ctx, keys).map_err(err)?;
        let period = rm.input_period();
        let x: Vec<f64> = (0..d)
            .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
            .collect();
        let replicated: Vec<f64> = (0..slots)
            .map(|t| x.get(t % period).copied().unwrap_or(0.0))
            .collect();
        let pt = ctx
            .encode(&replicated, slots, level, ctx.params().default_scale())
            .map_err(err)?;
        let ct = sk.encrypt(&ctx, &pt, &mut rng).map_err(err)?;
        let q_l = ctx.params().q()[level] as f64;
        // The dense reference y = W x, replicated with the output period.
        let y: Vec<f64> = (0..d)
            .map(|i| {
                (0..d)
                    .map(|j| f64::from(weights[i * d + j]) * scale * x[j])
                    .sum()
            })
            .collect();
        let out_period = rm.output_period();
        let expect: Vec<f64> = (0..slots)
            .map(|t| y.get(t % out_period).copied().unwrap_or(0.0))
            .collect();
        let precision = |c: &ensi_ckks::Ciphertext| -> Result<f64, String> {
            let r = eval.rescale(c).map_err(err)?;
            let got = ctx
                .decode(&sk.decrypt(&ctx, &r).map_err(err)?)
                .map_err(err)?;
            Ok(PrecisionStats::real(&expect, &got).min_bits)
        };

        // Streamed: diagonals computed from the weights and encoded one at a time.
        let mut streamed_s = Vec::new();
        let mut streamed = None;
        let before = eval.op_count();
        for _ in 0..reps.max(1) {
            let start = Instant::now();
            streamed = Some(eval.replicated_matvec(&ct, &rm, q_l).map_err(err)?);
            streamed_s.push(start.elapsed().as_secs_f64());
        }
        let streamed_ops = eval.op_count() - before;
        let streamed = streamed.ok_or("no run")?;

        // Cached: every diagonal encoded once, kept, then the product.
        let start = Instant::now();
        let lt = cached_transform(&rm).map_err(err)?;
        let encoded = lt.encode(&ctx, level, q_l).map_err(err)?;
        let encode_s = start.elapsed().as_secs_f64();
        drop(lt);
        let diagonals = rm.shape().map_err(err)?.indices().len();
        let cached_bytes = diagonals * (level + 1) * ctx.n() * 8;
        let mut cached_s = Vec::new();
        let mut cached = None;
        let before = eval.op_count();
        for _ in 0..reps.max(1) {
            let start = Instant::now();
            cached = Some(eval.linear_transform(&ct, &encoded).map_err(err)?);
            cached_s.push(start.elapsed().as_secs_f64());
        }
        let cached_ops = eval.op_count() - before;
        let cached = cached.ok_or("no run")?;
        drop(encoded);
        let (s_med, _) = median_min(streamed_s);
        let (c_med, _) = median_min(cached_s);
        let runs = reps.max(1);
        eprintln!(
            "ensi bench: lintrans {d} x {d}: streamed {s_med:.3} s, cached {c_med:.3} s \
             (+ {encode_s:.3} s to encode {diagonals} diagonals, {:.2} GB kept): {:.2}x",
            cached_bytes as f64 / 1e9,
            s_med / c_med
        );
        results.push(json!({
            "rows": d,
            "cols": d,
            "slots": slots,
            "level": level,
            "diagonals": diagonals,
            "streamed_s": s_med,
            "cached_s": c_med,
            "cached_encode_s": encode_s,
            "cached_diagonal_bytes": cached_bytes,
            "streamed_over_cached": s_med / c_med,
            "streamed_precision_bits": precision(&streamed)?,
            "cached_precision_bits": precision(&cached)?,
            "ops_per_run": {
                "encode": streamed_ops.encode / runs,
                "plain_mul": streamed_ops.plain_mul / runs,
                "hoisted_rotate": streamed_ops.hoisted_rotate / runs,
                "rotate": streamed_ops.rotate / runs,
                "same_key_switches_as_cached": streamed_ops.key_switches() == cached_ops.key_switches(),
            },
        }));
    }
    Ok(json!({
        "params": {"log_n": log_n, "q_bits": [60, 50, 50, 50, 50, 50], "p_bits": [60, 60], "dnum": 3},
        "sizes": results,
    }))
}
