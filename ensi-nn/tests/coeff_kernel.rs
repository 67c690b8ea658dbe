//! The coefficient-encoded layer kernel (`ensi_nn::coeff_kernel`) against the f64 product, at
//! small INSECURE bootstrappable parameters (N = 2^12): a chunked column-block input, three
//! integer projections (one output chunk; two with a factor per output row and token, in one
//! packing with the first; one with all-zero rows, in a second packing), every output slot
//! (the replicas included)
//! against the expected column-block slot vector, the output level and scale, and the
//! predicted bootstraps and key switches.
#![allow(clippy::unwrap_used)]

use ensi_ckks::{
    BootstrapKeys, BootstrapParametersLiteral, Bootstrapper, CkksContext, EvaluationKeySet,
    KeyRequest, Parameters, ParametersLiteral, SecretKey,
};
use ensi_nn::block::{BlockMatrix, ChunkedMatrix, chunk_cols, chunks};
use ensi_nn::coeff_kernel::{
    CoeffProjection, cauchy_schwarz_bound, coeff_galois_elements, coeff_linear,
    coeff_linear_counts, coeff_linear_counts_with, coeff_rotations, largest_row_norm,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

#[test]
fn coefficient_projections_match_the_product_in_the_block_layout() {
    let literal = ParametersLiteral::insecure_bootstrap_test(12, 2, 9);
    let ctx = CkksContext::new(Parameters::new_insecure(literal).unwrap()).unwrap();
    let (n, slots) = (ctx.n(), ctx.n() / 2);
    let lit = BootstrapParametersLiteral {
        cts_level_budget: 2,
        stc_level_budget: 2,
        log_eval_scale: Some(60),
        ..BootstrapParametersLiteral::default()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(51);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let (tokens, cols) = (3usize, 700usize);
    let n_pad = tokens.next_power_of_two();
    let shapes = [(150usize, 0.37f64), (700, -0.05), (300, 0.8)];
    let steps = coeff_rotations(slots, &shapes.map(|s| s.0), n_pad).unwrap();
    let mut keys = BootstrapKeys::generate(&ctx, &sk, &lit, &mut rng).unwrap();
    let extra = EvaluationKeySet::generate(
        &ctx,
        &sk,
        &KeyRequest::new()
            .with_rotations(&ctx, &steps)
            .with_level0_galois_elements(&coeff_galois_elements(n, n_pad)),
        &mut rng,
    )
    .unwrap();
    for key in extra.into_keys() {
        keys.insert(key);
    }
    let budget = lit.stc_level_budget;
    let bts = Bootstrapper::new(&ctx, lit, keys).unwrap();
    let e = bts.evaluator();

    let mut draw = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let x: Vec<f64> = (0..tokens * cols).map(|_| 2.0 * draw() - 1.0).collect();
    // The 300-row projection's rows from 200 on are zero (as a head layout's padding): their
    // leaves are skipped, and the output must still hold zeros there.
    let weights: Vec<Vec<i64>> = shapes
        .iter()
        .map(|&(rows, _)| {
            (0..rows * cols)
                .map(|i| match (draw() * 3.0) as i64 {
                    _ if rows == 300 && i / cols >= 200 => 0,
                    0 => -1,
                    1 => 0,
                    _ => 1,
                })
                .collect()
        })
        .collect();
    let delta = ctx.params().default_scale();
    let y = ChunkedMatrix::encrypt(&ctx, &sk, &x, tokens, 4, delta, &mut rng).unwrap();
    assert_eq!(y.parts().len(), 2);
    let y_norm = (0..tokens)
        .map(|t| {
            x[t * cols..(t + 1) * cols]
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt()
        })
        .fold(0.0f64, f64::max);
    // The kernel's helper for a clear input, against the direct computation above.
    assert!((largest_row_norm(&x, cols) - y_norm).abs() <= 1e-12 * y_norm);
    let entries: Vec<_> = weights
        .iter()
        .map(|w| move |r: usize, c: usize| w[r * cols + c])
        .collect();
    // The second projection (two output chunks) also scales each row by its own factor.
    let row_factor = |r: usize, t: usize| 0.5 + (r % 7) as f64 / 8.0 - t as f64 / 16.0;
    let factors: [Option<&(dyn Fn(usize, usize) -> f64 + Sync)>; 3] =
        [None, Some(&row_factor), None];
    let projections: Vec<CoeffProjection<'_>> = shapes
        .iter()
        .zip(&entries)
        .zip(factors)
        .map(
            |((&(rows, multiplier), entry), row_factor)| CoeffProjection {
                rows,
                entry,
                multiplier,
                factor: row_factor,
                bound: cauchy_schwarz_bound(rows, cols, entry, y_norm),
            },
        )
        .collect();
    let before = e.op_count();
    let outs = coeff_linear(&bts, &y, &projections, delta).unwrap();
    let ops = e.op_count() - before;
    let rows: Vec<usize> = shapes.iter().map(|s| s.0).collect();
    // Worked by hand: 2048 slots, n_pad 4, so 512 columns per chunk and two input chunks; a
    // packing holds up to 1024 rows. The first packing: 150 rows at row 0, then 700 = 512 + 188
    // at rows 150 and 662 (850 rows: L = 512 leaves, 1024 products, 511 merges and no trace
    // step); rotations: the 150 rows' doubling (period 1024 < 2048), the 512 rows' real part
    // (by 150 * 4) and imaginary part (by (150 - 512) * 4), the 188 rows' imaginary part (by
    // (662 - 512) * 4) and doubling. The 300 rows do not fit: a second packing (L = 256, 512
    // products, 255 + log2(512 / 256) = 256 key switches, the imaginary part by -256 * 4).
    let counts = coeff_linear_counts(n, cols, &rows, n_pad).unwrap();
    assert_eq!(counts, [2, 1024 + 512, 511 + 256, 2, 5 + 1]);
    // Knowing the zero rows: the second packing's leaves (L = 256) hold rows r = bitrev(j)
    // and 256 + r, zero from row 200 on, so the 56 leaves with r >= 200 are absent: 200
    // products per input chunk, and fewer merges.
    let known = coeff_linear_counts_with(n, cols, &rows, n_pad, &|p, r| p == 2 && r >= 200);
    let known = known.unwrap();
    assert_eq!(known[1], 1024 + 2 * 200);
    assert!(known[2] < 511 + 256 && known[2] > 511 + 128, "{known:?}");
    assert_eq!(ops.bootstrap, counts[3]);

    let chunk = chunk_cols(slots, n_pad);
    for ((((rows, multiplier), w), out), factor) in
        shapes.iter().zip(&weights).zip(&outs).zip(factors)
    {
        let (rows, multiplier) = (*rows, *multiplier);
        assert_eq!((out.cols(), out.tokens()), (rows, tokens));
        assert_eq!(out.scale(), delta);
        assert_eq!(out.level(), bts.output_level() + budget - 1);
        let expect: Vec<f64> = (0..tokens)
            .flat_map(|t| {
                let x = &x;
                (0..rows).map(move |r| {
                    multiplier
                        * factor.map_or(1.0, |f| f(r, t))
                        * (0..cols)
                            .map(|c| w[r * cols + c] as f64 * x[t * cols + c])
                            .sum::<f64>()
                })
            })
            .collect();
        let max = expect.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        // Every slot of every output chunk, the replicas and the padding included.
        let mut err = 0.0f64;
        for (part, (r0, width)) in out.parts().iter().zip(chunks(rows, chunk)) {
            let part_expect: Vec<f64> = (0..tokens)
                .flat_map(|t| expect[t * rows + r0..t * rows + r0 + width].to_vec())
                .collect();
            let want = BlockMatrix::slot_values(&part_expect, tokens, width, slots).unwrap();
            let got = ctx
                .decode(&sk.decrypt(&ctx, part.ciphertext()).unwrap())
                .unwrap();
            for (g, w) in got.iter().zip(&want) {
                err = err.max((g - w).abs());
            }
        }
        let bits = -(err / max).log2();
        eprintln!(
            "{rows}x{cols}, {tokens} tokens, multiplier {multiplier}: {bits:.1} bits of the \
             largest output over every slot ({} output chunk(s))",
            out.parts().len()
        );
        assert!(bits > 12.0, "{rows}x{cols}: {bits}");
    }
}
