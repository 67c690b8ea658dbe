//! Forward and inverse negacyclic NTT, every backend this CPU runs, beside tfhe-ntt.
//!
//! Groups `ntt/{fwd,inv}/N=2^k/q{bits}` hold one entry per ensi backend and the tfhe-ntt
//! `prime64::Plan` on the same prime. Each transform runs in place on the same buffer, so the
//! values stay in `[0, q)` without copies.
//!
//! Fairness: ensi's inverse includes the `N^{-1}` scaling (folded into its last stage); tfhe-ntt's
//! `inv` does not, so the inverse group has both `tfhe-ntt` (`inv` alone) and
//! `tfhe-ntt+normalize` (`inv` then `normalize`: the same work as ensi's inverse). The two
//! libraries also differ in output order (ensi: bit-reversed evaluations; tfhe-ntt: its own
//! order), which does not change the work. tfhe-ntt 0.7 with its default `avx512` feature uses
//! AVX-512 (IFMA for primes below 2^51) on stable Rust through pulp 0.22.
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use ensi_math::{Backend, NttPlan, generate_ntt_primes};

fn data(n: usize, q: u64) -> Vec<u64> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s % q
        })
        .collect()
}

fn bench_ntt(c: &mut Criterion) {
    // One prime per class, NTT-friendly for the largest N: 50 bits (below 2^50, so IFMA
    // applies) and 60 bits.
    let primes =
        [50u32, 60].map(|bits| (bits, generate_ntt_primes(bits, 1, 1 << 16, &[]).unwrap()[0]));
    for log_n in [14u32, 16] {
        let n = 1usize << log_n;
        for &(bits, q) in &primes {
            let plans: Vec<NttPlan> = Backend::available()
                .into_iter()
                .map(|b| NttPlan::with_backend(n, q, b).unwrap())
                .collect();
            // IFMA runs the AVX-512 kernels above 2^50: `seen` skips the duplicate.
            let mut seen = Vec::new();
            let tfhe = tfhe_ntt::prime64::Plan::try_new(n, q).unwrap();
            let input = data(n, q);

            let mut g = c.benchmark_group(format!("ntt/fwd/N=2^{log_n}/q{bits}"));
            for plan in &plans {
                if seen.contains(&plan.backend()) {
                    continue;
                }
                seen.push(plan.backend());
                let mut a = input.clone();
                g.bench_function(BenchmarkId::from_parameter(plan.backend().name()), |b| {
                    b.iter(|| plan.forward(black_box(&mut a)))
                });
            }
            let mut a = input.clone();
            g.bench_function(BenchmarkId::from_parameter("tfhe-ntt"), |b| {
                b.iter(|| tfhe.fwd(black_box(&mut a)))
            });
            g.finish();

            seen.clear();
            let mut g = c.benchmark_group(format!("ntt/inv/N=2^{log_n}/q{bits}"));
            for plan in &plans {
                if seen.contains(&plan.backend()) {
                    continue;
                }
                seen.push(plan.backend());
                let mut a = input.clone();
                g.bench_function(BenchmarkId::from_parameter(plan.backend().name()), |b| {
                    b.iter(|| plan.inverse(black_box(&mut a)))
                });
            }
            let mut a = input.clone();
            g.bench_function(BenchmarkId::from_parameter("tfhe-ntt"), |b| {
                b.iter(|| tfhe.inv(black_box(&mut a)))
            });
            let mut a = input.clone();
            g.bench_function(BenchmarkId::from_parameter("tfhe-ntt+normalize"), |b| {
                b.iter(|| {
                    tfhe.inv(black_box(&mut a));
                    tfhe.normalize(&mut a);
                })
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench_ntt);
criterion_main!(benches);
