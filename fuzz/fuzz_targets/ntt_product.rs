//! Cross-checks the NTT product of every available backend against the shared naive
//! negacyclic convolution (`ensi_math::oracle`), for fuzzer-chosen small degrees, primes and coefficients.
#![no_main]

use ensi_math::{Backend, NttPlan, generate_ntt_primes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, u8, Vec<u64>)| {
    let (log_n, bits, coeffs) = input;
    let n = 1usize << (1 + log_n % 8);
    let bits = 20 + u32::from(bits) % 43;
    let Ok(primes) = generate_ntt_primes(bits, 1, n, &[]) else {
        return;
    };
    let q = primes[0];
    let pick = |i: usize| coeffs.get(i).copied().unwrap_or(i as u64) % q;
    let a: Vec<u64> = (0..n).map(pick).collect();
    let b: Vec<u64> = (n..2 * n).map(pick).collect();
    let expected = ensi_math::oracle::negacyclic_mul(&a, &b, q);
    for backend in Backend::available() {
        let plan = NttPlan::with_backend(n, q, backend).expect("backend listed as available");
        let (mut fa, mut fb) = (a.clone(), b.clone());
        plan.forward(&mut fa);
        plan.forward(&mut fb);
        let mut c: Vec<u64> = fa
            .iter()
            .zip(&fb)
            .map(|(&x, &y)| plan.modulus().mul(x, y))
            .collect();
        plan.inverse(&mut c);
        assert_eq!(c, expected, "{backend:?}");
    }
});
