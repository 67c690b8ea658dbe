//! `ensi self-check`: verifies the arithmetic foundations on this machine against independent
//! references (u128 arithmetic, naive negacyclic convolution, big-integer CRT) and prints what
//! it verified. Every backend the CPU supports is exercised.

use ensi_math::{Backend, Modulus, NttPlan, RnsBasis, generate_ntt_primes, generate_prime_chain};
use num_bigint::{BigInt, BigUint};
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
    checks.push(check_crt_and_rescale(&mut rng));
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

use ensi_math::oracle::negacyclic_mul as naive_product;

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

/// CRT reconstruction and rescaling over a 24-prime basis, against big-integer arithmetic.
fn check_crt_and_rescale(rng: &mut ChaCha20Rng) -> Check {
    const TRIALS: usize = 64;
    let name = "RNS: CRT round trip and rescale vs BigInt".to_string();
    let mut sizes = vec![60u32];
    sizes.extend(std::iter::repeat_n(50, 23));
    let basis = generate_prime_chain(&sizes, 1 << 16).and_then(|p| RnsBasis::new(&p));
    let Ok(basis) = basis else {
        return Check {
            name,
            passed: false,
            detail: "basis construction failed".into(),
        };
    };
    let limbs = basis.len();
    let q_last = BigInt::from(basis.moduli()[limbs - 1].q());
    let mut passed = true;
    let mut data = vec![0u64; limbs * TRIALS];
    let mut originals = Vec::with_capacity(TRIALS);
    for t in 0..TRIALS {
        let bytes: Vec<u8> = (0..200).map(|_| rng.next_u64() as u8).collect();
        let x = BigUint::from_bytes_le(&bytes) % basis.product();
        let residues = basis.to_residues(&x);
        passed &= basis.reconstruct(&residues) == x;
        for (i, r) in residues.iter().enumerate() {
            data[i * TRIALS + t] = *r;
        }
        originals.push(basis.reconstruct_centered(&residues));
    }
    // Rescale treats the columns as TRIALS coefficients of one polynomial.
    basis.rescale(TRIALS, limbs, &mut data);
    let Ok(lower) = basis.prefix(limbs - 1) else {
        return Check {
            name,
            passed: false,
            detail: "prefix basis failed".into(),
        };
    };
    for (t, x) in originals.iter().enumerate() {
        let residues: Vec<u64> = (0..limbs - 1).map(|i| data[i * TRIALS + t]).collect();
        // round(x / q) for a signed x, in exact integer arithmetic.
        let doubled = x * 2 + &q_last;
        let floor = num_integer::Integer::div_floor(&doubled, &(&q_last * 2));
        passed &= lower.reconstruct_centered(&residues) == floor;
    }
    Check {
        name,
        passed,
        detail: format!("{TRIALS} random values mod a 24-prime Q (~1210 bits)"),
    }
}
