//! Measures, on the embedded model, what ENSI's two departures from the trained model cost:
//! sigmoid attention instead of softmax (no retraining) and no activation quantization (HE
//! cannot round). Prints the figures (recorded in the crate README) and checks they are sane.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ensi_bitnet::{
    AttentionKind, ForwardOptions, LogitComparison, Model, compare_logits, embedded_model,
};

/// Deterministic prompts: "Hello, world!" as bytes and 7 pseudo-random ones of 6 to 16 tokens.
fn prompts() -> Vec<Vec<u32>> {
    let mut out = vec![
        b"Hello, world!"
            .iter()
            .map(|&b| u32::from(b))
            .collect::<Vec<_>>(),
    ];
    let mut s = 0x1234_5678_9ABC_DEF1u64;
    for k in 0..7 {
        let len = 6 + (k * 3) % 11;
        out.push(
            (0..len)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 33) % 256) as u32
                })
                .collect(),
        );
    }
    out
}

fn compare(m: &Model, a: ForwardOptions, b: ForwardOptions) -> LogitComparison {
    let mut total = LogitComparison::default();
    for p in prompts() {
        let ta = m.forward::<f64>(&p, &a).unwrap();
        let tb = m.forward::<f64>(&p, &b).unwrap();
        let c = compare_logits(&ta.logits, &tb.logits).unwrap();
        // Recount the agreement independently of the library.
        let mut agree = 0;
        for r in 0..ta.logits.rows() {
            let am = |row: &[f64]| {
                row.iter()
                    .enumerate()
                    .fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
            };
            if am(ta.logits.row(r)) == am(tb.logits.row(r)) {
                agree += 1;
            }
        }
        assert_eq!(c.top1_agreements, agree);
        assert_eq!(c.positions, p.len());
        total.merge(&c);
    }
    total
}

#[test]
fn softmax_vs_sigmoid_and_activation_quantization_on_the_embedded_model() {
    let m = embedded_model().unwrap();
    let opt = |attention, act_quant| ForwardOptions::new(attention, act_quant);
    let (soft, sig) = (AttentionKind::Softmax, AttentionKind::Sigmoid);
    let rows = [
        (
            "softmax vs sigmoid, act-quant on ",
            compare(&m, opt(soft, true), opt(sig, true)),
        ),
        (
            "softmax vs sigmoid, act-quant off",
            compare(&m, opt(soft, false), opt(sig, false)),
        ),
        (
            "act-quant on vs off, softmax     ",
            compare(&m, opt(soft, true), opt(soft, false)),
        ),
        (
            "act-quant on vs off, sigmoid     ",
            compare(&m, opt(sig, true), opt(sig, false)),
        ),
        (
            "trained (softmax, AQ) vs HE (sigmoid, no AQ)",
            compare(&m, opt(soft, true), opt(sig, false)),
        ),
    ];
    let total_positions: usize = prompts().iter().map(Vec::len).sum();
    let mut max_logit = 0.0f64;
    for p in prompts() {
        let t = m.forward::<f64>(&p, &opt(soft, true)).unwrap();
        max_logit = t
            .logits
            .as_slice()
            .iter()
            .fold(max_logit, |a, v| a.max(v.abs()));
    }
    println!(
        "embedded model, {} prompts, {total_positions} positions, f64, max |logit| (softmax, AQ) = {max_logit:.2}:",
        prompts().len()
    );
    for (name, c) in &rows {
        println!(
            "  {name}: max |logit diff| = {:.4}, top-1 agreement = {}/{} = {:.1}%",
            c.max_abs_diff,
            c.top1_agreements,
            c.positions,
            100.0 * c.top1_agreement()
        );
        assert_eq!(c.positions, total_positions);
        assert!(c.max_abs_diff.is_finite());
        assert!(c.max_abs_diff > 0.0, "{name}: the two runs should differ");
        assert!((0.0..=1.0).contains(&c.top1_agreement()));
    }
    // Sanity: a run compared with itself agrees everywhere.
    let same = compare(&m, opt(sig, false), opt(sig, false));
    assert_eq!((same.max_abs_diff, same.top1_agreement()), (0.0, 1.0));
    // f32 vs f64 (HE-style options) is far closer than any of the above.
    let mut prec = LogitComparison::default();
    for p in prompts() {
        let a = m.forward::<f32>(&p, &opt(sig, false)).unwrap();
        let b = m.forward::<f64>(&p, &opt(sig, false)).unwrap();
        prec.merge(&compare_logits(&a.logits, &b.logits).unwrap());
    }
    println!(
        "  f32 vs f64 (sigmoid, no AQ): max |logit diff| = {:.2e}, top-1 agreement = {:.1}%",
        prec.max_abs_diff,
        100.0 * prec.top1_agreement()
    );
    assert!(prec.max_abs_diff < 1e-3);
}
