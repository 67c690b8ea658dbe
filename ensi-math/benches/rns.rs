//! Benchmarks of the key-switching hot paths at N = 2^16: ModUp of one digit, ModDown, rescale,
//! and a forward NTT over all limbs for scale.
//!
//! Q = 20 primes of 50 bits, P = 4 primes of 60 bits, dnum = 4 (digits of 5 limbs).
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use ensi_math::{KeySwitchBasis, RnsContext, RnsPoly, Rounding, generate_ntt_primes};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::hint::black_box;

const LOG_N: u32 = 16;
const L: usize = 20;
const K: usize = 4;

fn random_limbs(rng: &mut ChaCha20Rng, primes: &[u64], n: usize) -> Vec<u64> {
    primes
        .iter()
        .flat_map(|&q| (0..n).map(|_| rng.next_u64() % q).collect::<Vec<_>>())
        .collect()
}

fn bench_rns(c: &mut Criterion) {
    let n = 1usize << LOG_N;
    let q = generate_ntt_primes(50, L, n, &[]).unwrap();
    let p = generate_ntt_primes(60, K, n, &[]).unwrap();
    let ks = KeySwitchBasis::new(&q, &p, 4).unwrap();
    let qp: Vec<u64> = q.iter().chain(&p).copied().collect();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let x = random_limbs(&mut rng, &q, n);
    let xp = random_limbs(&mut rng, &qp, n);

    let mut group = c.benchmark_group("rns_n65536");
    group.sample_size(10);
    let mut out = vec![0u64; (L + K) * n];
    group.bench_function("mod_up_one_digit_5_to_19_limbs", |b| {
        b.iter(|| ks.mod_up_digit(n, L, 1, black_box(&x), &mut out).unwrap())
    });
    let mut all = vec![0u64; ks.digits_at(L) * (L + K) * n];
    group.bench_function("decompose_4_digits", |b| {
        b.iter(|| ks.decompose(n, L, black_box(&x), &mut all).unwrap())
    });
    let mut y = xp.clone();
    group.bench_function("mod_down_24_to_20_limbs_round", |b| {
        b.iter(|| {
            y.copy_from_slice(&xp);
            ks.mod_down(n, L, black_box(&mut y), Rounding::Round)
                .unwrap()
        })
    });
    let mut z = x.clone();
    group.bench_function("copy_20_limbs_baseline", |b| {
        b.iter(|| z.copy_from_slice(black_box(&x)))
    });
    group.bench_function("rescale_coeff_20_limbs", |b| {
        b.iter(|| {
            z.copy_from_slice(&x);
            ks.q_basis().rescale(n, L, black_box(&mut z))
        })
    });
    let ctx = RnsContext::new(n, &q).unwrap();
    let poly = RnsPoly::from_raw(&ctx, L, x.clone()).unwrap();
    let ntt_poly = poly.clone().into_ntt();
    group.bench_function("rescale_ntt_20_limbs", |b| {
        b.iter(|| black_box(ntt_poly.clone()).rescale().unwrap())
    });
    group.bench_function("forward_ntt_20_limbs", |b| {
        b.iter(|| black_box(poly.clone()).into_ntt())
    });
    group.finish();
}

criterion_group!(benches, bench_rns);
criterion_main!(benches);
