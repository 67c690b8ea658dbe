//! CKKS primitives at the N = 2^16 bootstrappable set (26 + 5 primes, dnum 6), at the top level
//! and at level 5, on 1 and 2 threads (each measured call runs inside a rayon pool of that size;
//! build with `--features parallel` for the 2-thread figures to differ).
//!
//! `cargo bench -p ensi-ckks --features parallel --bench ckks`. For the side-by-side comparison
//! with OpenFHE, see `bench/peer.sh` (the same operations, interleaved, in one table).
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use ensi_ckks::{
    CkksContext, EvaluationKeySet, Evaluator, GaloisKey, KeyRequest, Parameters, ParametersLiteral,
    PublicKey, RelinearizationKey, SecretKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::time::Duration;

fn bench_ckks(c: &mut Criterion) {
    let ctx = CkksContext::new(Parameters::new(ParametersLiteral::n16_bootstrappable()).unwrap())
        .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let pk = PublicKey::generate(&ctx, &sk, &mut rng).unwrap();
    let steps: Vec<isize> = (1..=8).collect();
    let request = KeyRequest::new()
        .with_relinearization()
        .with_rotations(&ctx, &steps);
    let keys = EvaluationKeySet::generate(&ctx, &sk, &request, &mut rng).unwrap();
    let eval = Evaluator::new(&ctx, keys).unwrap();
    let slots = ctx.n() / 2;
    let values: Vec<f64> = (0..slots)
        .map(|i| ((i * 7919) % 2001) as f64 / 1000.0 - 1.0)
        .collect();
    let scale = ctx.params().default_scale();
    let g1 = ctx.rotation_galois_element(1);
    let g3 = ctx.rotation_galois_element(3);

    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut g = c.benchmark_group(format!("ckks/N=2^16/threads={threads}"));
        g.sample_size(10).measurement_time(Duration::from_secs(3));
        macro_rules! timed {
            ($id:expr, $body:expr) => {
                g.bench_function($id, |b| b.iter(|| pool.install(|| $body)));
            };
        }
        timed!("keygen/secret+public", {
            let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
            PublicKey::generate(&ctx, &sk, &mut rng).unwrap()
        });
        timed!(
            "keygen/relinearization",
            RelinearizationKey::generate(&ctx, &sk, &mut rng).unwrap()
        );
        timed!(
            "keygen/galois",
            GaloisKey::generate(&ctx, &sk, g1, &mut rng).unwrap()
        );
        for level in [ctx.max_level(), 5] {
            let pt = ctx.encode(&values, slots, level, scale).unwrap();
            let ct = pk.encrypt(&ctx, &pt, &mut rng).unwrap();
            let ct2 = pk.encrypt(&ctx, &pt, &mut rng).unwrap();
            let prod = eval.mul_relin(&ct, &ct2).unwrap();
            let dec = eval.decompose_for_rotation(&ct).unwrap();
            let id = |op: &str| BenchmarkId::new(op, format!("level={level}"));
            timed!(
                id("encode"),
                ctx.encode(black_box(&values), slots, level, scale).unwrap()
            );
            timed!(
                id("encrypt/public"),
                pk.encrypt(&ctx, black_box(&pt), &mut rng).unwrap()
            );
            timed!(
                id("decrypt+decode"),
                ctx.decode(&sk.decrypt(&ctx, black_box(&ct)).unwrap())
                    .unwrap()
            );
            timed!(id("add"), eval.add(black_box(&ct), &ct2).unwrap());
            timed!(
                id("mul_plain"),
                eval.mul_plain(black_box(&ct), &pt).unwrap()
            );
            timed!(
                id("mul_relin"),
                eval.mul_relin(black_box(&ct), &ct2).unwrap()
            );
            timed!(id("rescale"), eval.rescale(black_box(&prod)).unwrap());
            timed!(id("rotate"), eval.rotate(black_box(&ct), 1).unwrap());
            timed!(
                id("hoisted/decompose"),
                eval.decompose_for_rotation(black_box(&ct)).unwrap()
            );
            timed!(
                id("hoisted/per-rotation"),
                eval.apply_galois_hoisted(black_box(&ct), &dec, g3).unwrap()
            );
        }
        g.finish();
    }
}

criterion_group!(benches, bench_ckks);
criterion_main!(benches);
