//! Samplers: supports, exact weights, moments, reproducible seed expansion.
#![allow(clippy::unwrap_used)]

use ensi_math::sample::{
    GAUSSIAN_BOUND, GAUSSIAN_SIGMA, SeedExpander, expand_seed, fill_uniform, gaussian, ternary,
    ternary_hamming, uniform_poly,
};
use ensi_math::{Coeff, Modulus, Ntt, RnsContext, RnsPoly, generate_ntt_primes};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn moments(x: &[i64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

#[test]
fn uniform_is_below_modulus_and_centred() {
    let m = Modulus::new((1 << 61) + 0x3b).unwrap(); // just above 2^61: rejection happens
    let mut out = vec![0u64; 1 << 16];
    fill_uniform(&mut rng(1), &m, &mut out);
    assert!(out.iter().all(|&x| x < m.q()));
    let mean = out.iter().map(|&x| x as f64 / m.q() as f64).sum::<f64>() / out.len() as f64;
    assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    let ctx = RnsContext::new(64, &generate_ntt_primes(40, 3, 64, &[]).unwrap()).unwrap();
    let p: RnsPoly<Ntt> = uniform_poly(&ctx, 3, &mut rng(2)).unwrap();
    for (i, m) in ctx.basis().moduli().iter().enumerate() {
        assert!(p.limb(i).iter().all(|&x| x < m.q()));
    }
}

#[test]
fn ternary_frequencies() {
    let mut out = vec![0i64; 1 << 16];
    ternary(&mut rng(3), &mut out);
    for v in [-1i64, 0, 1] {
        let f = out.iter().filter(|&&x| x == v).count() as f64 / out.len() as f64;
        assert!((f - 1.0 / 3.0).abs() < 0.01, "P({v}) = {f}");
    }
    assert!(out.iter().all(|x| (-1..=1).contains(x)));
}

#[test]
fn hamming_weight_is_exact_and_spread() {
    for (n, h) in [
        (16usize, 0usize),
        (16, 16),
        (100, 37),
        (1 << 10, 64),
        (1 << 16, 192),
    ] {
        let mut out = vec![0i64; n];
        ternary_hamming(&mut rng(n as u64 + h as u64), h, &mut out).unwrap();
        assert_eq!(out.iter().filter(|&&x| x != 0).count(), h);
        assert!(out.iter().all(|x| (-1..=1).contains(x)));
    }
    // Positions: over many draws every position is hit about h/n of the time; signs balanced.
    let (n, h, trials) = (64usize, 8usize, 4000usize);
    let mut hits = vec![0usize; n];
    let mut plus = 0usize;
    let mut r = rng(9);
    let mut out = vec![0i64; n];
    for _ in 0..trials {
        ternary_hamming(&mut r, h, &mut out).unwrap();
        for (i, &x) in out.iter().enumerate() {
            hits[i] += (x != 0) as usize;
            plus += (x == 1) as usize;
        }
    }
    let expected = (trials * h) as f64 / n as f64; // 500
    for &c in &hits {
        assert!(
            (c as f64 - expected).abs() < 5.0 * expected.sqrt() + 1.0,
            "{hits:?}"
        );
    }
    let fp = plus as f64 / (trials * h) as f64;
    assert!((fp - 0.5).abs() < 0.02, "P(+1) = {fp}");
    assert!(ternary_hamming(&mut r, 65, &mut out).is_err());
}

#[test]
fn gaussian_moments() {
    let mut out = vec![0i64; 1 << 18];
    gaussian(&mut rng(5), &mut out);
    let (mean, var) = moments(&out);
    let target = GAUSSIAN_SIGMA * GAUSSIAN_SIGMA;
    assert!(mean.abs() < 0.03, "mean {mean}");
    assert!((var - target).abs() / target < 0.02, "variance {var}");
    assert!(out.iter().all(|x| x.abs() <= GAUSSIAN_BOUND));
    // Symmetry and the probability of zero: rho(0) / sum rho = 1 / 8.0212...
    let p0 = out.iter().filter(|&&x| x == 0).count() as f64 / out.len() as f64;
    assert!((p0 - 1.0 / 8.021_210_471).abs() < 0.003, "P(0) = {p0}");
    let pos = out.iter().filter(|&&x| x > 0).count() as f64;
    let neg = out.iter().filter(|&&x| x < 0).count() as f64;
    assert!((pos - neg).abs() / (pos + neg) < 0.01);
}

#[test]
fn seed_expansion_is_reproducible() {
    let n = 128;
    let primes = generate_ntt_primes(50, 3, n, &[]).unwrap();
    let ctx = RnsContext::new(n, &primes).unwrap();
    let seed = [7u8; 32];
    let a: RnsPoly<Ntt> = expand_seed(&ctx, 3, &seed).unwrap();
    let b: RnsPoly<Ntt> = expand_seed(&ctx, 3, &seed).unwrap();
    assert_eq!(a, b);
    let mut other = seed;
    other[31] ^= 1;
    let c: RnsPoly<Ntt> = expand_seed(&ctx, 3, &other).unwrap();
    assert_ne!(a, c);
    // The documented expansion, re-implemented from the spec.
    let mut xof = ChaCha20Rng::from_seed(seed);
    let mut expect = Vec::new();
    for &q in &primes {
        let mask = (1u64 << (64 - q.leading_zeros())) - 1;
        while expect.len() % n != 0
            || expect.len() < (primes.iter().position(|&p| p == q).unwrap() + 1) * n
        {
            let w = xof.next_u64() & mask;
            if w < q {
                expect.push(w);
            }
        }
    }
    assert_eq!(a.as_slice(), &expect[..]);
    // Limb by limb, as a streaming client expands it.
    let mut expander = SeedExpander::new(&seed);
    let mut limb = vec![0u64; n];
    for (i, &q) in primes.iter().enumerate() {
        expander.next_limb(&Modulus::new(q).unwrap(), &mut limb);
        assert_eq!(limb, a.limb(i), "limb {i}");
    }
    // Random access: resuming at the position a limb started at gives that limb again.
    let mut expander = SeedExpander::new(&seed);
    let mut starts = Vec::new();
    for &q in &primes {
        starts.push(expander.position());
        expander.next_limb(&Modulus::new(q).unwrap(), &mut limb);
    }
    for (i, (&q, &at)) in primes.iter().zip(&starts).enumerate().rev() {
        SeedExpander::resume(&seed, at).next_limb(&Modulus::new(q).unwrap(), &mut limb);
        assert_eq!(limb, a.limb(i), "limb {i} resumed");
    }
    // A lower level is a prefix of the expansion.
    let low: RnsPoly<Coeff> = expand_seed(&ctx, 1, &seed).unwrap();
    assert_eq!(low.as_slice(), a.limb(0));
    // The XOF is RFC 8439 ChaCha20: zero key, zero nonce, block 0 starts 76 b8 e0 ad a0 f1 3d 90.
    assert_eq!(
        ChaCha20Rng::from_seed([0u8; 32]).next_u64(),
        0x903d_f1a0_ade0_b876
    );
}
