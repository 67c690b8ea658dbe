//! The composite sign and ReLU against `f64::signum` and `max(0, x)`, away from zero.
#![allow(clippy::unwrap_used)]

use ensi_ckks::{
    CkksContext, EvaluationKeySet, Evaluator, KeyRequest, Parameters, ParametersLiteral,
    PrecisionStats, SecretKey,
};
use ensi_nn::activation::{relu, sign};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

#[test]
fn composite_sign_and_relu_away_from_zero() {
    let ctx = CkksContext::new(
        Parameters::new_insecure(ParametersLiteral::insecure_test(11, 12)).unwrap(),
    )
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(41);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let keys = EvaluationKeySet::generate(
        &ctx,
        &sk,
        &KeyRequest::new().with_relinearization(),
        &mut rng,
    )
    .unwrap();
    let eval = Evaluator::new(&ctx, keys).unwrap();
    // Values with |x| >= 0.25, alternating signs.
    let x: Vec<f64> = (0..128)
        .map(|i| {
            let v = 0.25 + 0.75 * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64);
            if i % 2 == 0 { v } else { -v }
        })
        .collect();
    let pt = ctx
        .encode(&x, x.len(), ctx.max_level(), ctx.params().default_scale())
        .unwrap();
    let ct = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
    let dec = |c| ctx.decode(&sk.decrypt(&ctx, c).unwrap()).unwrap();
    let s = sign(&eval, &ct, 5).unwrap();
    let truth: Vec<f64> = x.iter().map(|v| v.signum()).collect();
    let p = PrecisionStats::real(&truth, &dec(&s));
    assert!(p.max_error < 0.05, "{p:?}");
    let r = relu(&eval, &ct, 5).unwrap();
    let truth: Vec<f64> = x.iter().map(|v| v.max(0.0)).collect();
    let p = PrecisionStats::real(&truth, &dec(&r));
    assert!(p.max_error < 0.05, "{p:?}");
}
