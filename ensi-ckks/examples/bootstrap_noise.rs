//! Where bootstrapping's error comes from, stage by stage, at the 128-bit N = 2^16 set: each
//! stage's output is decrypted and compared with its f64 model computed from the exact
//! ModRaised polynomial `t = Delta m + e + q_0 I`, and every error is expressed in units of
//! the message (bits of precision: `-log2` of the largest and the median absolute error).
//!
//! ```sh
//! cargo run --release -p ensi-ckks --features parallel --example bootstrap_noise
//! ```
//!
//! Environment: `K`, `COS`, `DA`, `H`, `CTS`, `STC`, `BSGS` override the EvalMod interval,
//! cosine degree, double angles, ephemeral weight, level budgets and baby/giant ratio; `AMP`
//! scales the messages (default 1); `SEED` picks the keys and messages; `TAIL` lists the
//! CoeffsToSlots outputs with the largest errors, the error quantiles, and the same transform
//! on a fresh encryption of the same polynomial (its own error, without ModRaise's noise).
//!
//! Errors of the coefficient-domain stages are in units of `t / Delta` per coefficient; the
//! last line is in slots, where SlotsToCoeffs sums `N / 2` coefficient errors.
#![allow(clippy::unwrap_used)]

use ensi_ckks::{
    BootstrapKeys, BootstrapParametersLiteral, Bootstrapper, CkksContext, Parameters,
    ParametersLiteral, SecretKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::f64::consts::PI;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `(worst, median)` bits of `-log2 |got - want| * unit`.
fn bits(want: &[f64], got: &[f64], unit: f64) -> (f64, f64) {
    let mut e: Vec<f64> = want
        .iter()
        .zip(got)
        .map(|(w, g)| ((w - g) * unit).abs().max(1e-300))
        .collect();
    e.sort_by(f64::total_cmp);
    (-e[e.len() - 1].log2(), -e[e.len() / 2].log2())
}

fn main() {
    let d = BootstrapParametersLiteral::default();
    let lit = BootstrapParametersLiteral {
        k: env("K", d.k),
        cos_degree: env("COS", d.cos_degree),
        double_angle: env("DA", d.double_angle),
        ephemeral_hamming_weight: env("H", d.ephemeral_hamming_weight),
        cts_level_budget: env("CTS", d.cts_level_budget),
        bsgs_ratio: env("BSGS", 2) as f64,
        stc_level_budget: env("STC", d.stc_level_budget),
        ..d
    };
    let amp: f64 = std::env::var("AMP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let ctx = CkksContext::new(Parameters::new(ParametersLiteral::n16_bootstrappable()).unwrap())
        .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(env("SEED", 5) as u64);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let keys = BootstrapKeys::generate(&ctx, &sk, &lit, &mut rng).unwrap();
    let bts = Bootstrapper::new(&ctx, lit.clone(), keys).unwrap();
    let slots = ctx.n() / 2;
    let v: Vec<f64> = (0..slots)
        .map(|_| amp * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0))
        .collect();
    let delta = ctx.params().default_scale();
    let q0 = ctx.params().q()[0] as f64;
    let k1 = (lit.k + 1) as f64;
    let pt = ctx.encode(&v, slots, 0, delta).unwrap();
    let ct = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
    let dec = |c: &ensi_ckks::Ciphertext| ctx.decode(&sk.decrypt(&ctx, c).unwrap()).unwrap();
    println!("input (encryption) {:?}", bits(&v, &dec(&ct), 1.0));

    let raised = bts.mod_raise(&ct).unwrap();
    let t = ctx
        .plaintext_coefficients(&sk.decrypt(&ctx, &raised).unwrap())
        .unwrap();
    let max_i = t
        .iter()
        .map(|x| (x / q0).round().abs())
        .fold(0.0f64, f64::max);
    println!("ModRaise: largest |I| = {max_i}");
    let (re, im) = bts.coeffs_to_slots(&raised).unwrap();
    let lb = slots.trailing_zeros();
    let rev = |i: usize| i.reverse_bits() >> (usize::BITS - lb);
    let (er, ei): (Vec<f64>, Vec<f64>) = (0..slots)
        .map(|i| (t[rev(i)] / (q0 * k1), t[rev(i) + slots] / (q0 * k1)))
        .unzip();
    // A CoeffsToSlots error of e in y = t / (q0 (K + 1)) is (K + 1) q0 / Delta e in the message.
    let y_unit = k1 * q0 / delta;
    let (dr, di) = (dec(&re), dec(&im));
    println!(
        "CoeffsToSlots (message units): re {:?} im {:?}",
        bits(&er, &dr, y_unit),
        bits(&ei, &di, y_unit)
    );
    if std::env::var("TAIL").is_ok() {
        let mut idx: Vec<usize> = (0..slots).collect();
        idx.sort_by(|&a, &b| (er[b] - dr[b]).abs().total_cmp(&(er[a] - dr[a]).abs()));
        for &i in idx.iter().take(12) {
            println!(
                "  slot {i} (coefficient {}): error {:.3e} (message units), t / q0 = {:.4}",
                rev(i),
                (er[i] - dr[i]).abs() * y_unit,
                t[rev(i)] / q0
            );
        }
        // The encoder alone: encode the expected slots at the same level and scale, decode.
        let pt = ctx.encode(&er, slots, re.level(), re.scale()).unwrap();
        let back = ctx.decode(&pt).unwrap();
        let mut worst: Vec<(f64, usize)> = (0..slots)
            .map(|i| ((er[i] - back[i]).abs() * y_unit, i))
            .collect();
        worst.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!("  encode/decode alone: worst {:?}", &worst[..4]);
        // The same polynomial t freshly encrypted: the transform's own error.
        let fresh = sk
            .encrypt(&ctx, &sk.decrypt(&ctx, &raised).unwrap(), &mut rng)
            .unwrap();
        let (fre, _) = bts.coeffs_to_slots(&fresh).unwrap();
        let fr = dec(&fre);
        let mut worst: Vec<(f64, usize)> = (0..slots)
            .map(|i| ((er[i] - fr[i]).abs() * y_unit, i))
            .collect();
        worst.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!("  fresh encryption of t: worst {:?}", &worst[..6]);
        for p in [0.5, 0.9, 0.99, 0.999, 0.9999] {
            let k = ((slots as f64) * p) as usize;
            let e = (er[idx[slots - 1 - k]] - dr[idx[slots - 1 - k]]).abs() * y_unit;
            println!("  quantile {p}: {:.2} bits", -e.log2());
        }
    }
    // EvalMod against sin(2 pi (K + 1) y) of the *decrypted* input (its own error only), and
    // against the exact t; a sine error of e is q0 / (2 pi Delta) e in the message.
    let s_unit = q0 / (2.0 * PI * delta);
    let (s, _) = bts.eval_mod(&re).unwrap();
    let ds = dec(&s);
    let own: Vec<f64> = dr.iter().map(|y| (2.0 * PI * k1 * y).sin()).collect();
    let exact: Vec<f64> = er.iter().map(|y| (2.0 * PI * k1 * y).sin()).collect();
    let ideal: Vec<f64> = er
        .iter()
        .map(|y| {
            let x = k1 * y;
            2.0 * PI * (x - x.round())
        })
        .collect();
    println!(
        "EvalMod alone {:?}; with CoeffsToSlots {:?}; sine vs x mod 1 {:?} (message units)",
        bits(&own, &ds, s_unit),
        bits(&exact, &ds, s_unit),
        bits(&ideal, &exact, s_unit)
    );
    let (s_im, _) = bts.eval_mod(&im).unwrap();
    let out = bts.slots_to_coeffs(&s, &s_im).unwrap();
    println!(
        "whole bootstrap {:?} at level {}",
        bits(&v, &dec(&out), 1.0),
        out.level()
    );
}
