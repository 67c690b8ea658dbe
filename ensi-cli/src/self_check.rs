//! `ensi self-check`: verifies the arithmetic foundations on this machine against independent
//! references (u128 arithmetic, naive negacyclic convolution, big-integer CRT) and prints what
//! it verified. Every backend the CPU supports is exercised.

use ensi_math::{Backend, Modulus, NttPlan, generate_ntt_primes};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng, TryRngCore};
use std::time::Instant;

/// One verified property: a name, whether it held, and what was checked.
struct Check {
    name: String,
    passed: bool,
    detail: String,
}

/// Runs every check with a fresh random seed (or `seed`), prints a line per check and a summary,
/// and returns whether all passed.
pub fn run(seed: Option<u64>) -> bool {
    // The seed only picks test vectors; if the OS generator fails, the clock will do.
    let seed = seed.unwrap_or_else(|| {
        rand_core::OsRng.try_next_u64().unwrap_or_else(|_| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map(|d| d.as_nanos() as u64).unwrap_or(0)
        })
    });
    println!("ensi self-check (seed {seed}; rerun with --seed {seed} to repeat)");
    println!("NTT backends on this CPU: {:?}", Backend::available());
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let start = Instant::now();
    let mut checks = Vec::new();
    checks.push(check_modulus(&mut rng));
    for log_n in [4u32, 10, 12] {
        for bits in [49u32, 60] {
            checks.extend(check_ntt_products(&mut rng, log_n, bits));
        }
    }
    for bits in [49u32, 60] {
        checks.extend(check_ntt_large(&mut rng, 16, bits));
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    for c in &checks {
        println!(
            "{} {:<44} {}",
            if c.passed { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    println!(
        "{} passed, {} failed ({:.2} s)",
        checks.len() - failed,
        failed,
        start.elapsed().as_secs_f64()
    );
    failed == 0
}

fn check_modulus(rng: &mut ChaCha20Rng) -> Check {
    const TRIALS: usize = 200_000;
    let mut passed = true;
    for _ in 0..TRIALS {
        let q = (rng.next_u64() >> 2) | 1;
        let Ok(m) = Modulus::new(q.max(3)) else {
            continue;
        };
        let q = m.q() as u128;
        let (a, b) = (rng.next_u64(), rng.next_u64());
        let w = b % m.q();
        passed &= m.mul(a, b) as u128 == (a as u128 * b as u128) % q;
        passed &= m.mul_shoup(a, w, m.shoup(w)) as u128 == (a as u128 * w as u128) % q;
        passed &= m.add(a % m.q(), w) as u128 == (a as u128 % q + w as u128) % q;
    }
    Check {
        name: "modulus: Barrett and Shoup vs u128".into(),
        passed,
        detail: format!("{TRIALS} random odd moduli below 2^62"),
    }
}

fn random_poly(rng: &mut ChaCha20Rng, n: usize, q: u64) -> Vec<u64> {
    (0..n).map(|_| rng.next_u64() % q).collect()
}

/// `a * b mod (X^N + 1, q)` by the schoolbook formula, skipping zero coefficients of `b`.
fn naive_product(a: &[u64], b: &[u64], q: u64) -> Vec<u64> {
    let n = a.len();
    let q128 = q as u128;
    let mut acc = vec![0u128; n];
    for (j, &bj) in b.iter().enumerate().filter(|(_, bj)| **bj != 0) {
        for (i, &ai) in a.iter().enumerate() {
            let p = ai as u128 * bj as u128 % q128;
            let k = i + j;
            if k < n {
                acc[k] = (acc[k] + p) % q128;
            } else {
                acc[k - n] = (acc[k - n] + q128 - p) % q128;
            }
        }
    }
    acc.into_iter().map(|x| x as u64).collect()
}

fn ntt_product(plan: &NttPlan, a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut fa, mut fb) = (a.to_vec(), b.to_vec());
    plan.forward(&mut fa);
    plan.forward(&mut fb);
    let m = plan.modulus();
    let mut c: Vec<u64> = fa.iter().zip(&fb).map(|(&x, &y)| m.mul(x, y)).collect();
    plan.inverse(&mut c);
    c
}

fn check_ntt_products(rng: &mut ChaCha20Rng, log_n: u32, bits: u32) -> Vec<Check> {
    let n = 1usize << log_n;
    let Ok(primes) = generate_ntt_primes(bits, 1, n, &[]) else {
        return vec![Check {
            name: format!("NTT N=2^{log_n} q~2^{bits}"),
            passed: false,
            detail: "no prime found".into(),
        }];
    };
    let q = primes[0];
    let a = random_poly(rng, n, q);
    let b = random_poly(rng, n, q);
    let expected = naive_product(&a, &b, q);
    Backend::available()
        .into_iter()
        .map(|backend| {
            let passed = NttPlan::with_backend(n, q, backend)
                .map(|plan| ntt_product(&plan, &a, &b) == expected)
                .unwrap_or(false);
            Check {
                name: format!("NTT product N=2^{log_n} {bits}-bit q {backend:?}"),
                passed,
                detail: "vs naive negacyclic convolution".into(),
            }
        })
        .collect()
}

/// At large N the dense naive product is too slow: multiply by a sparse polynomial instead, and
/// check that every backend agrees with the naive product and round-trips.
fn check_ntt_large(rng: &mut ChaCha20Rng, log_n: u32, bits: u32) -> Vec<Check> {
    let n = 1usize << log_n;
    let Ok(primes) = generate_ntt_primes(bits, 1, n, &[]) else {
        return Vec::new();
    };
    let q = primes[0];
    let a = random_poly(rng, n, q);
    let mut b = vec![0u64; n];
    for _ in 0..8 {
        b[(rng.next_u64() % n as u64) as usize] = rng.next_u64() % q;
    }
    let expected = naive_product(&a, &b, q);
    Backend::available()
        .into_iter()
        .map(|backend| {
            let passed = NttPlan::with_backend(n, q, backend)
                .map(|plan| {
                    let mut round = a.clone();
                    plan.forward(&mut round);
                    plan.inverse(&mut round);
                    round == a && ntt_product(&plan, &a, &b) == expected
                })
                .unwrap_or(false);
            Check {
                name: format!("NTT product N=2^{log_n} {bits}-bit q {backend:?}"),
                passed,
                detail: "round trip; product by an 8-term polynomial vs naive".into(),
            }
        })
        .collect()
}
