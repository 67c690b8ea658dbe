//! Interleaved timing of ensi's NTT (the backend chosen for this CPU) against tfhe-ntt on the
//! same prime and buffer, printed as one JSON object for `bench/compare.py --ntt`:
//! `{"impl": "ensi-vs-tfhe-ntt", "rows": [{"op", "ensi_us", "peer_us", "ensi_backend"}]}`.
//!
//! Each round times one ensi transform and one tfhe-ntt transform back to back; the figure is
//! the best of `rounds` (default 200; `ntt_peer 5` for a smoke run). The inverse compares
//! ensi's inverse (which includes the `N^{-1}` scaling) with tfhe-ntt `inv` + `normalize`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ensi_math::{NttPlan, generate_ntt_primes};
use std::hint::black_box;
use std::time::Instant;

fn best(rounds: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let (mut ta, mut tb) = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        let t = Instant::now();
        a();
        ta = ta.min(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        b();
        tb = tb.min(t.elapsed().as_secs_f64() * 1e6);
    }
    (ta, tb)
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("rounds must be a number"))
        .unwrap_or(200);
    let mut rows = Vec::new();
    for log_n in [14u32, 16] {
        let n = 1usize << log_n;
        for bits in [50u32, 60] {
            let q = generate_ntt_primes(bits, 1, 1 << 16, &[]).unwrap()[0];
            let plan = NttPlan::new(n, q).unwrap();
            let tfhe = tfhe_ntt::prime64::Plan::try_new(n, q).unwrap();
            let mut s = 0x9e37_79b9_7f4a_7c15u64;
            let input: Vec<u64> = (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    s % q
                })
                .collect();
            let (mut a, mut b) = (input.clone(), input.clone());
            let (fe, fp) = best(
                rounds,
                || plan.forward(black_box(&mut a)),
                || tfhe.fwd(black_box(&mut b)),
            );
            let (ie, ip) = best(
                rounds,
                || plan.inverse(black_box(&mut a)),
                || {
                    tfhe.inv(black_box(&mut b));
                    tfhe.normalize(black_box(&mut b));
                },
            );
            let backend = plan.backend().name();
            for (dir, e, p) in [("fwd", fe, fp), ("inv", ie, ip)] {
                rows.push(format!(
                    "{{\"op\": \"ntt_{dir}_2^{log_n}_{bits}bit\", \"ensi_us\": {e:.2}, \
                     \"peer_us\": {p:.2}, \"ensi_backend\": \"{backend}\"}}"
                ));
            }
        }
    }
    println!(
        "{{\"impl\": \"ensi-vs-tfhe-ntt\", \"rounds\": {rounds}, \"rows\": [{}]}}",
        rows.join(", ")
    );
}
