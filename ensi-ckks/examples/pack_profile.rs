use ensi_ckks::coeff::pack_galois_elements;
use ensi_ckks::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::time::Instant;

fn main() {
    let ctx = CkksContext::new(Parameters::new(ParametersLiteral::n16_bootstrappable()).unwrap())
        .unwrap();
    let n = ctx.n();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let g = pack_galois_elements(n, 4096);
    let keys = EvaluationKeySet::generate(
        &ctx,
        &sk,
        &KeyRequest::new().with_level0_galois_elements(&g),
        &mut rng,
    )
    .unwrap();
    let e = Evaluator::new(&ctx, keys).unwrap();
    let v: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
    let pt = ctx.encode_coefficients(&v, 0, 2f64.powi(40)).unwrap();
    let ct = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
    let reps: usize = std::env::var("REPS")
        .map(|s| s.parse().unwrap())
        .unwrap_or(200);
    let t = Instant::now();
    for i in 0..reps {
        let _ = e.apply_galois(&ct, g[i % g.len()]).unwrap();
    }
    println!(
        "level-0 apply_galois: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
    let w: Vec<i64> = (0..n).map(|i| ((i * 7) % 3) as i64 - 1).collect();
    let t = Instant::now();
    for _ in 0..reps {
        let _ = e.mul_integer_poly(&ct, &w).unwrap();
    }
    println!(
        "mul_integer_poly: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
    let t = Instant::now();
    for i in 0..reps {
        let _ = e.mul_monomial(&ct, 1 << (i % 12)).unwrap();
    }
    println!(
        "mul_monomial: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
    let t = Instant::now();
    for _ in 0..reps {
        let _ = e.add(&ct, &ct).unwrap();
    }
    println!(
        "add: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
    let leaves: Vec<Option<Ciphertext>> = (0..512).map(|_| Some(ct.clone())).collect();
    let t = Instant::now();
    let _ = e.pack_strided(&leaves, 4096).unwrap();
    println!(
        "pack 512 leaves: {:.3} ms per leaf",
        t.elapsed().as_secs_f64() * 1e3 / 512.0
    );
}
