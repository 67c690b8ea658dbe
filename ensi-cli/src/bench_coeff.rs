//! `ensi bench coeff`: the coefficient-encoded ternary product fused with bootstrapping (the
//! minimal experiment of the coefficient kernel), beside the slot plan's equivalent at the same
//! parameters in the same run.
//!
//! The fused event (FE): the activation encrypted in coefficients at the bottom level
//! (`q_0`), the integer products with the ternary weight polynomials built on the fly from the
//! weights ([`ensi_ckks::coeff::CoeffLayout`]), the leaves packed into one ciphertext
//! (PackLWEs with strided leaves, key switches at the bottom level), then ModRaise,
//! CoeffsToSlots and EvalMod ([`ensi_ckks::Bootstrapper::bootstrap_coefficients`]): the
//! product comes out in slots, refreshed. The slot plan's equivalent: a full bootstrap and the
//! column-block BSGS product (the layers' kernel) at level 10.
//!
//! Precision is against the f64 product of the same ternary weights, read from the FE's slots
//! linearly (`t = q_0 / (2 pi) * slot`, what a server would go on with) and, for comparison,
//! through `asin` (what the sine leaves when it is not linear).

use crate::bench_layer::{ops_json, peak_rss, run_json};
use crate::bench_matmul::{bits, random_weights};
use crate::run::demo_parameters;
use clap::Args;
use ensi_ckks::coeff::{CoeffLayout, SlotCoeffLayout, pack_galois_elements};
use ensi_ckks::{BootstrapKeys, Bootstrapper, CkksContext, EvaluationKey, GaloisKey, SecretKey};
use ensi_nn::block::{
    ChunkedMatrix, block_linear_chunked, block_linear_chunked_rotations, chunk_cols, chunks,
};
use ensi_nn::coeff_kernel::{
    CoeffProjection, cauchy_schwarz_bound, coeff_linear, coeff_linear_counts, coeff_rotations,
    largest_row_norm,
};
use ensi_nn::plan::CoeffCosts;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{Value, json};
use std::f64::consts::PI;
use std::process::ExitCode;
use std::time::Instant;

/// Options of `ensi bench coeff`.
#[derive(Args, Debug)]
pub struct CoeffBenchArgs {
    /// Weight shapes as OUTxIN, comma-separated (bitnet_b1_58-large's q_proj, up_proj,
    /// down_proj).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1536x1536,4096x1536,1536x4096"
    )]
    shapes: Vec<String>,
    /// Prompt lengths n, comma-separated (each adds the slot plan's rotation keys for its
    /// token count: about 4 GiB at N = 2^16; one at a time stays within 16 GiB).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    tokens: Vec<usize>,
    /// The block width m (a power of two; default: the planner's, fewest predicted operations).
    #[arg(long)]
    m: Option<usize>,
    /// Skip the slot plan's equivalent (bootstrap + BSGS product).
    #[arg(long)]
    no_slot_plan: bool,
    /// `log2(q_0 / max |packed value|)`: how far below `q_0` the packed products sit when they
    /// enter the bootstrap (the sine's linear range against the signal's precision).
    #[arg(long, default_value_t = 10)]
    log_ratio: u32,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the weights, the activations and the keys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One small shape at a small INSECURE ring (N = 2^13): a quick check of the harness.
    #[arg(long)]
    smoke: bool,
    /// Fail unless every fused event matches the f64 product to this many bits (linear read).
    #[arg(long)]
    check_bits: Option<f64>,
    /// Also run the slot-fed event: the activation in the layers' column-block slot layout,
    /// SlotsToCoeffs straight into the product's layout
    /// ([`ensi_ckks::coeff::SlotCoeffLayout`]), the product, the packing and the bootstrap
    /// back into the slot layout.
    #[arg(long)]
    from_slots: bool,
    /// The packing's Galois keys: `level0` (over `q_0 p_0` only, two limbs, one digit) or
    /// `full` (every prime, truncated to level 0).
    #[arg(long, value_enum, default_value_t = PackKeys::Level0)]
    pack_keys: PackKeys,
}

/// Which Galois keys the packing switches with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PackKeys {
    /// Level-0 keys ([`GaloisKey::generate_level0`]).
    Level0,
    /// Full keys truncated to level 0.
    Full,
}

/// Runs the benchmark and prints its JSON on standard output; progress goes to standard error.
pub fn run_coeff(args: &CoeffBenchArgs) -> ExitCode {
    run_json("coeff", args.threads, || bench_coeff(args))
}

#[allow(clippy::too_many_lines)]
fn bench_coeff(args: &CoeffBenchArgs) -> Result<Value, String> {
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let started = Instant::now();
    let shapes: Vec<(usize, usize)> = if args.smoke {
        vec![(150, 100)]
    } else {
        args.shapes
            .iter()
            .map(|s| crate::bench_matmul::parse_shape(s))
            .collect::<Result<_, _>>()?
    };
    let token_list = if args.smoke {
        vec![1, 4]
    } else {
        args.tokens.clone()
    };
    if token_list.contains(&0) {
        return Err("--tokens must be positive".into());
    }
    let (params, literal) = demo_parameters(args.smoke.then_some(13))?;
    let ctx = CkksContext::new(params).map_err(err)?;
    let (n, slots) = (ctx.n(), ctx.n() / 2);
    let level = ctx
        .max_level()
        .checked_sub(literal.depth())
        .ok_or("the parameter set cannot bootstrap")?;
    let q0 = ctx.params().q()[0] as f64;
    let delta = ctx.params().default_scale();
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let mut draw = {
        let mut r = ChaCha20Rng::seed_from_u64(args.seed ^ 0x5eed);
        move || (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    };
    // Keys: bootstrapping's; the slot plan's rotations cut to the layers' level; the
    // packing's Galois keys cut to level 0 (they only ever switch there).
    let clock = Instant::now();
    eprintln!(
        "ensi bench coeff: N = 2^{}, generating keys",
        ctx.params().log_n()
    );
    let sk = SecretKey::generate(&ctx, &mut rng).map_err(err)?;
    let mut keys = BootstrapKeys::generate(&ctx, &sk, &literal, &mut rng).map_err(err)?;
    let mut have = keys.evaluation.galois_elements();
    let mut pack_bytes = 0usize;
    // `cut: None` makes a level-0 key (over q_0 p_0), beside any full key of `g`.
    let mut add_key = |keys: &mut BootstrapKeys, g: usize, cut: Option<usize>| {
        let Some(cut) = cut else {
            let key = GaloisKey::generate_level0(&ctx, &sk, g, &mut rng).map_err(err)?;
            let bytes = key.switching_key().heap_bytes();
            keys.insert(EvaluationKey::Galois(key));
            return Ok::<usize, String>(bytes);
        };
        if have.contains(&g) {
            return Ok(0);
        }
        let mut key = GaloisKey::generate(&ctx, &sk, g, &mut rng).map_err(err)?;
        key.truncate(&ctx, cut).map_err(err)?;
        let bytes = key.switching_key().heap_bytes();
        keys.insert(EvaluationKey::Galois(key));
        have.push(g);
        Ok(bytes)
    };
    // The kernel's reassembly rotates at the coefficient bootstrap's output level: its keys
    // whole, made first (a slot-plan step that is the same rotation then reuses them).
    if args.from_slots {
        for &(rows, _) in &shapes {
            for &t in &token_list {
                for r in coeff_rotations(slots, &[rows], t.next_power_of_two()).map_err(err)? {
                    add_key(
                        &mut keys,
                        ctx.rotation_galois_element(r),
                        Some(ctx.max_level()),
                    )?;
                }
            }
        }
    }
    if !args.no_slot_plan {
        for &(rows, cols) in &shapes {
            for &t in &token_list {
                for r in block_linear_chunked_rotations(slots, rows, cols, t.next_power_of_two())
                    .map_err(err)?
                {
                    add_key(&mut keys, ctx.rotation_galois_element(r), Some(level))?;
                }
            }
        }
    }
    // After the slot plan's: a Galois element both need keeps its key at the higher level
    // (with level-0 packing keys, it has both: the evaluator uses the level-0 one at level 0).
    for g in pack_galois_elements(n, n) {
        let cut = (args.pack_keys == PackKeys::Full).then_some(0);
        pack_bytes += add_key(&mut keys, g, cut)?;
    }
    let bts = Bootstrapper::new(&ctx, literal, keys).map_err(err)?;
    let eval = bts.evaluator();
    let keygen_s = clock.elapsed().as_secs_f64();
    eprintln!(
        "ensi bench coeff: keys in {keygen_s:.1} s (packing keys, {:?}: {:.1} MiB)",
        args.pack_keys,
        pack_bytes as f64 / f64::from(1u32 << 20)
    );
    crate::bench_layer::warm_up(&bts, &sk, &mut rng)?;
    let coeff_costs = if args.from_slots {
        // The reassembly rotation of the first shape and prompt length (its key was made whole).
        let (rows, _) = shapes[0];
        let step = coeff_rotations(slots, &[rows], token_list[0].next_power_of_two())
            .map_err(err)?
            .first()
            .copied();
        Some(measure_coeff_costs(&bts, &sk, step, &mut rng)?)
    } else {
        None
    };
    let mut results = Vec::new();
    for &(rows, cols) in &shapes {
        let (_, ternary) = random_weights(rows, cols, &mut draw)?;
        let w_int = |r: usize, c: usize| i64::from(ternary.get(r, c));
        for &tokens in &token_list {
            let layout = match args.m {
                Some(m) => CoeffLayout::new(n, rows, cols, tokens, m),
                None => CoeffLayout::best(n, rows, cols, tokens, 20.0),
            }
            .map_err(err)?;
            let x: Vec<f64> = (0..tokens * cols).map(|_| 2.0 * draw() - 1.0).collect();
            let mut y = vec![0.0; tokens * rows];
            for t in 0..tokens {
                for r in 0..rows {
                    y[t * rows + r] = (0..cols)
                        .map(|c| f64::from(ternary.get(r, c)) * x[t * cols + c])
                        .sum();
                }
            }
            let y_max = y.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            let gain = layout.gain() as f64;
            // The input scale that puts the largest packed value at q_0 / 2^log_ratio (the
            // layer would take this bound from calibration).
            let scale = q0 / f64::from(1u32 << args.log_ratio) / (gain * y_max);
            eprintln!(
                "ensi bench coeff: {rows}x{cols}, n = {tokens}: m = {}, {} input block(s), {} \
                 products of {} rows, {} leaves, stride {}, input scale 2^{:.1}",
                layout.m(),
                layout.input_blocks(),
                layout.products(),
                layout.rows_per_product(),
                layout.leaves(),
                layout.stride(),
                scale.log2()
            );
            // The client: the activation in coefficients at level 0.
            let xs = (0..layout.input_blocks())
                .map(|b| {
                    let v = layout.input_coefficients(&x, b)?;
                    sk.encrypt(&ctx, &ctx.encode_coefficients(&v, 0, scale)?, &mut rng)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            // Products.
            let before = eval.op_count();
            let clock = Instant::now();
            let leaves = eval.coeff_leaves(&layout, &xs, &w_int).map_err(err)?;
            let products_s = clock.elapsed().as_secs_f64();
            // Packing.
            let clock = Instant::now();
            let packed = eval.pack_strided(&leaves, layout.m()).map_err(err)?;
            let packing_s = clock.elapsed().as_secs_f64();
            drop(leaves);
            let pack_ops = eval.op_count() - before;
            let packed_coeffs = ctx
                .plaintext_coefficients(&sk.decrypt(&ctx, &packed).map_err(err)?)
                .map_err(err)?;
            let positions: Vec<usize> = (0..tokens)
                .flat_map(|t| (0..rows).map(move |r| (t, r)))
                .map(|(t, r)| layout.output_position(t, r))
                .collect();
            let before_bts: Vec<f64> = positions
                .iter()
                .map(|&p| packed_coeffs[p] / (gain * scale))
                .collect();
            let garbage = (0..n)
                .filter(|p| !positions.contains(p))
                .map(|p| packed_coeffs[p].abs())
                .fold(0.0f64, f64::max)
                / (gain * scale * y_max);
            // The bootstrap from coefficients into slots.
            let clock = Instant::now();
            let (re, im) = bts.bootstrap_coefficients(&packed).map_err(err)?;
            let bootstrap_s = clock.elapsed().as_secs_f64();
            let fe_ops = eval.op_count() - before;
            let (dr, di) = decrypt_halves(&ctx, &sk, &re, &im)?;
            let log_slots = slots.trailing_zeros();
            let rev = |i: usize| i.reverse_bits() >> (usize::BITS - log_slots);
            let slot_of = |p: usize| {
                if p < slots {
                    dr[rev(p)]
                } else {
                    di[rev(p - slots)]
                }
            };
            let linear: Vec<f64> = positions
                .iter()
                .map(|&p| slot_of(p) * q0 / (2.0 * PI) / (gain * scale))
                .collect();
            let arcsine: Vec<f64> = positions
                .iter()
                .map(|&p| slot_of(p).clamp(-1.0, 1.0).asin() * q0 / (2.0 * PI) / (gain * scale))
                .collect();
            let fe_s = products_s + packing_s + bootstrap_s;
            let (bits_before, bits_linear, bits_asin) =
                (bits(&y, &before_bts), bits(&y, &linear), bits(&y, &arcsine));
            let predicted_ks = layout.key_switches();
            let counted_ks = pack_ops.key_switches();
            eprintln!(
                "ensi bench coeff:   products {products_s:.2} s, packing {packing_s:.2} s \
                 ({counted_ks} key switches, predicted {predicted_ks}), bootstrap into slots \
                 {bootstrap_s:.1} s: FE {fe_s:.1} s; {bits_before:.1} bits before the bootstrap \
                 (garbage {garbage:.1e}), {bits_linear:.1} after (asin: {bits_asin:.1}), output \
                 level {}",
                re.level()
            );
            let mut entry = json!({
                "shape": format!("{rows}x{cols}"), "rows": rows, "cols": cols, "tokens": tokens,
                "layout": {
                    "m": layout.m(), "input_blocks": layout.input_blocks(),
                    "rows_per_product": layout.rows_per_product(), "leaves": layout.leaves(),
                    "stride": layout.stride(), "log2_input_scale": scale.log2(),
                },
                "fused": {
                    "products_s": products_s, "packing_s": packing_s,
                    "bootstrap_s": bootstrap_s, "total_s": fe_s,
                    "products": layout.products(),
                    "key_switches": counted_ks, "key_switches_predicted": predicted_ks,
                    "output_level": re.level(),
                    "ops": ops_json(&fe_ops),
                },
                "precision": {
                    "bits_before_bootstrap": bits_before, "garbage_relative": garbage,
                    "bits_linear": bits_linear, "bits_asin": bits_asin,
                },
            });
            if predicted_ks != counted_ks {
                return Err(format!(
                    "{rows}x{cols}, n = {tokens}: {counted_ks} key switches counted, \
                     {predicted_ks} predicted"
                ));
            }
            if let Some(want) = args.check_bits
                && (bits_linear.is_nan() || bits_linear < want)
            {
                return Err(format!(
                    "{rows}x{cols}, n = {tokens}: {bits_linear:.1} bits, below --check-bits {want}"
                ));
            }
            if args.from_slots {
                let costs = coeff_costs.as_ref().ok_or("no kernel costs")?;
                let from =
                    slot_fed_event(&bts, &sk, &ternary, &x, tokens, &y, args, costs, &mut rng)?;
                entry["from_slots"] = from;
            }
            if !args.no_slot_plan {
                // The slot plan: refresh the activation, then the BSGS product at level 10.
                let n_pad = tokens.next_power_of_two();
                let chunk = chunk_cols(slots, n_pad);
                let xb = ChunkedMatrix::encrypt(&ctx, &sk, &x, tokens, 0, delta, &mut rng)
                    .map_err(err)?;
                let clock = Instant::now();
                let refreshed = xb.map(|b| bts.bootstrap(b.ciphertext())).map_err(err)?;
                let slot_bootstrap_s = clock.elapsed().as_secs_f64();
                let clock = Instant::now();
                let ys = block_linear_chunked(
                    eval,
                    refreshed.parts(),
                    rows,
                    |r, c, _| f64::from(ternary.get(r, c)),
                    delta,
                )
                .map_err(err)?;
                let slot_product_s = clock.elapsed().as_secs_f64();
                let mut got = vec![0.0; tokens * rows];
                for (yc, (r0, h)) in ys.iter().zip(chunks(rows, chunk)) {
                    let d = yc.decrypt(&ctx, &sk).map_err(err)?;
                    for t in 0..tokens {
                        got[t * rows + r0..t * rows + r0 + h]
                            .copy_from_slice(&d[t * h..(t + 1) * h]);
                    }
                }
                let slot_bits = bits(&y, &got);
                let slot_s = slot_bootstrap_s + slot_product_s;
                eprintln!(
                    "ensi bench coeff:   slot plan: {} bootstrap(s) {slot_bootstrap_s:.1} s + BSGS \
                     product {slot_product_s:.1} s = {slot_s:.1} s ({slot_bits:.1} bits): the FE \
                     is {:.2}x faster",
                    xb.parts().len(),
                    slot_s / fe_s
                );
                entry["slot_plan"] = json!({
                    "bootstraps": xb.parts().len(), "bootstrap_s": slot_bootstrap_s,
                    "product_s": slot_product_s, "total_s": slot_s, "bits": slot_bits,
                    "speedup_of_fused": slot_s / fe_s,
                });
            }
            results.push(entry);
        }
    }
    Ok(json!({
        "bench": "coeff",
        "params": {"log_n": ctx.params().log_n(), "secure": !args.smoke, "log_q0": q0.log2()},
        "pack_keys": format!("{:?}", args.pack_keys).to_lowercase(),
        "coeff_costs_s": coeff_costs.map(|c| json!({
            "slots_to_coeffs": c.slots_to_coeffs, "integer_product": c.integer_product,
            "pack_step": c.pack_step, "coeff_bootstrap": c.coeff_bootstrap, "rotate": c.rotate,
        })),
        "threads": rayon::current_num_threads(),
        "keygen_s": keygen_s,
        "results": results,
        "peak_rss_gib": peak_rss().map(|b| b as f64 / f64::from(1u32 << 30)),
        "total_s": started.elapsed().as_secs_f64(),
    }))
}

/// The slot-fed fused event of `--from-slots`: `x` (`tokens x cols`) encrypted in the
/// column-block slot layout at the lowest level SlotsToCoeffs can start from; SlotsToCoeffs of
/// each chunk (with the factor that puts the packed values at `q_0 / 2^log_ratio`), the
/// products and the packing at level 0, and the bootstrap from coefficients, whose halves hold
/// `W x` in the slot layout. Precision against `y` (linear read).
#[allow(clippy::too_many_arguments)]
fn slot_fed_event(
    bts: &Bootstrapper,
    sk: &SecretKey,
    ternary: &ensi_bitnet::ternary::TernaryMatrix,
    x: &[f64],
    tokens: usize,
    y: &[f64],
    args: &CoeffBenchArgs,
    costs: &CoeffCosts,
    rng: &mut ChaCha20Rng,
) -> Result<Value, String> {
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let eval = bts.evaluator();
    let ctx = eval.context().clone();
    let (n, slots) = (ctx.n(), ctx.n() / 2);
    let (rows, cols) = (ternary.rows(), ternary.cols());
    let n_pad = tokens.next_power_of_two();
    let layout = SlotCoeffLayout::new(n, rows, cols, n_pad).map_err(err)?;
    let chunk = layout.chunk();
    let (q0, delta) = (ctx.params().q()[0] as f64, ctx.params().default_scale());
    let y_max = y.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let gain = layout.gain() as f64;
    let f = q0 / f64::from(1u32 << args.log_ratio) / (gain * y_max * delta);
    let level = bts.literal().stc_level_budget;
    eprintln!(
        "ensi bench coeff:   from slots: {} input chunk(s) of {chunk} columns, {} leaves of 2 \
         rows, {} products, from level {level}",
        layout.input_chunks(),
        layout.leaves(),
        layout.products()
    );
    let cts = (0..layout.input_chunks())
        .map(|k| {
            let mut v = vec![0.0; slots];
            for t in 0..tokens {
                for c in 0..chunk.min(cols - k * chunk) {
                    v[c * n_pad + t] = x[t * cols + k * chunk + c];
                }
            }
            sk.encrypt(&ctx, &ctx.encode(&v, slots, level, delta)?, rng)
        })
        .collect::<Result<Vec<_>, ensi_ckks::CkksError>>()
        .map_err(err)?;
    let before = eval.op_count();
    let clock = Instant::now();
    let inputs = cts
        .iter()
        .map(|ct| eval.drop_to_level(&bts.slots_to_coefficients(ct, f)?, 0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let stc_s = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let before_pack = eval.op_count();
    let w_int = |r: usize, c: usize| i64::from(ternary.get(r, c));
    let packed = eval
        .slot_coeff_matmul(&layout, &inputs, &w_int)
        .map_err(err)?;
    let pack_ops = eval.op_count() - before_pack;
    let product_s = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let (re, im) = bts.bootstrap_coefficients(&packed).map_err(err)?;
    let bootstrap_s = clock.elapsed().as_secs_f64();
    let ops = eval.op_count() - before;
    let (dr, di) = decrypt_halves(&ctx, sk, &re, &im)?;
    let unit = q0 / (2.0 * PI) / (gain * f * delta);
    let got: Vec<f64> = (0..tokens)
        .flat_map(|t| (0..rows).map(move |r| (t, r)))
        .map(|(t, r)| {
            let (upper, slot) = layout.output_slot(t, r);
            (if upper { di[slot] } else { dr[slot] }) * unit
        })
        .collect();
    let b = bits(y, &got);
    let total = stc_s + product_s + bootstrap_s;
    let (counted, predicted) = (pack_ops.key_switches(), layout.key_switches());
    let event_predicted_s = costs.time(&[
        layout.input_chunks(),
        layout.products(),
        layout.key_switches(),
        1,
        0,
    ]);
    eprintln!(
        "ensi bench coeff:   from slots: SlotsToCoeffs {stc_s:.2} s, products + packing \
         {product_s:.2} s ({counted} key switches, predicted {predicted}), bootstrap into slots \
         {bootstrap_s:.1} s: {total:.1} s (predicted {event_predicted_s:.1} s), {b:.1} bits"
    );
    let kernel = kernel_event(bts, sk, ternary, x, tokens, y, costs, rng)?;
    if counted != predicted {
        return Err(format!(
            "from slots: {counted} key switches counted, {predicted} predicted"
        ));
    }
    if let Some(want) = args.check_bits
        && (b.is_nan() || b < want)
    {
        return Err(format!(
            "from slots: {b:.1} bits, below --check-bits {want}"
        ));
    }
    Ok(json!({
        "input_chunks": layout.input_chunks(), "chunk_cols": chunk, "leaves": layout.leaves(),
        "products": layout.products(), "input_level": level,
        "slots_to_coeffs_s": stc_s, "products_packing_s": product_s,
        "bootstrap_s": bootstrap_s, "total_s": total,
        "key_switches": counted, "key_switches_predicted": predicted,
        "output_level": re.level(), "bits": b, "ops": ops_json(&ops),
        "predicted_s": event_predicted_s, "kernel": kernel,
    }))
}

/// The decrypted slots of a coefficient bootstrap's two halves (`re`, `im`).
fn decrypt_halves(
    ctx: &std::sync::Arc<CkksContext>,
    sk: &SecretKey,
    re: &ensi_ckks::Ciphertext,
    im: &ensi_ckks::Ciphertext,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let slots = |ct| ctx.decode(&sk.decrypt(ctx, ct).map_err(err)?).map_err(err);
    Ok((slots(re)?, slots(im)?))
}

/// The layer kernel ([`ensi_nn::coeff_kernel::coeff_linear`]) on the activation in the
/// column-block layout at the StC level budget: the event above plus the reassembly into the
/// layout (replicated, exact scale), against the f64 product, timed against the cost model's
/// prediction from the costs measured at the start of the run.
#[allow(clippy::too_many_arguments)]
fn kernel_event(
    bts: &Bootstrapper,
    sk: &SecretKey,
    ternary: &ensi_bitnet::ternary::TernaryMatrix,
    x: &[f64],
    tokens: usize,
    y: &[f64],
    costs: &CoeffCosts,
    rng: &mut ChaCha20Rng,
) -> Result<Value, String> {
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let ctx = bts.evaluator().context().clone();
    let (rows, cols) = (ternary.rows(), ternary.cols());
    let delta = ctx.params().default_scale();
    let level = bts.literal().stc_level_budget;
    let xm = ChunkedMatrix::encrypt(&ctx, sk, x, tokens, level, delta, rng).map_err(err)?;
    let y_norm = largest_row_norm(x, cols);
    let entry = |r: usize, c: usize| i64::from(ternary.get(r, c));
    let projection = CoeffProjection {
        rows,
        entry: &entry,
        multiplier: 1.0,
        factor: None,
        bound: cauchy_schwarz_bound(rows, cols, &entry, y_norm),
    };
    let counts =
        coeff_linear_counts(ctx.n(), cols, &[rows], tokens.next_power_of_two()).map_err(err)?;
    let predicted = costs.time(&counts);
    let clock = Instant::now();
    let out = coeff_linear(bts, &xm, &[projection], delta).map_err(err)?;
    let seconds = clock.elapsed().as_secs_f64();
    let out = out.into_iter().next().ok_or("no kernel output")?;
    let got = out.decrypt(&ctx, sk).map_err(err)?;
    let b = bits(y, &got);
    eprintln!(
        "ensi bench coeff:   layer kernel (coeff_linear, reassembly included): {seconds:.1} s, \
         predicted {predicted:.1} s ({:.2}), output level {}, {b:.1} bits (bound by \
         Cauchy-Schwarz)",
        predicted / seconds,
        out.level()
    );
    Ok(json!({
        "seconds": seconds, "predicted_s": predicted, "output_level": out.level(), "bits": b,
        "counts": {"slots_to_coeffs": counts[0], "products": counts[1],
                   "key_switches": counts[2], "bootstraps": counts[3], "rotations": counts[4]},
    }))
}

/// The kernel's per-step costs ([`CoeffCosts`]) on this machine, now: one SlotsToCoeffs, one
/// coefficient bootstrap and one rotation at its output level timed alone; integer products and
/// packing steps timed in rounds of independent operations run side by side, as the kernel runs
/// them (wall time per operation).
fn measure_coeff_costs(
    bts: &Bootstrapper,
    sk: &SecretKey,
    step: Option<isize>,
    rng: &mut ChaCha20Rng,
) -> Result<CoeffCosts, String> {
    use rayon::prelude::*;
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let eval = bts.evaluator();
    let ctx = eval.context().clone();
    let (n, slots) = (ctx.n(), ctx.n() / 2);
    let delta = ctx.params().default_scale();
    let small: Vec<f64> = (0..slots).map(|i| ((i % 17) as f64 - 8.0) * 1e-3).collect();
    let level = bts.literal().stc_level_budget;
    let ct = sk
        .encrypt(
            &ctx,
            &ctx.encode(&small, slots, level, delta).map_err(err)?,
            rng,
        )
        .map_err(err)?;
    let clock = Instant::now();
    let low = eval
        .drop_to_level(&bts.slots_to_coefficients(&ct, 1e-3).map_err(err)?, 0)
        .map_err(err)?;
    let slots_to_coeffs = clock.elapsed().as_secs_f64();
    // A weight polynomial of two dense ternary rows, as a leaf of the slot-fed layout builds.
    let layout = SlotCoeffLayout::new(n, 2, 1536.min(slots), 8.min(slots)).map_err(err)?;
    let rounds = 32;
    let clock = Instant::now();
    (0..rounds)
        .into_par_iter()
        .map(|j| {
            let w = layout.weight_poly(0, 0, &|r, c| ((r + c + j) % 3) as i64 - 1);
            eval.mul_integer_poly(&low, &w).map(drop)
        })
        .collect::<Result<(), _>>()
        .map_err(err)?;
    let integer_product = clock.elapsed().as_secs_f64() / f64::from(rounds as u32);
    let sigma = ensi_ckks::coeff::stride_galois_element(n, 2);
    let clock = Instant::now();
    (0..rounds)
        .into_par_iter()
        .map(|_| {
            let shifted = eval.mul_monomial(&low, 1)?;
            let plus = eval.add(&low, &shifted)?;
            let minus = eval.sub(&low, &shifted)?;
            let mut out = plus;
            eval.add_assign(&mut out, &eval.apply_galois(&minus, sigma)?)
        })
        .collect::<Result<(), _>>()
        .map_err(err)?;
    let pack_step = clock.elapsed().as_secs_f64() / f64::from(rounds as u32);
    let clock = Instant::now();
    let (re, _) = bts.bootstrap_coefficients(&low).map_err(err)?;
    let coeff_bootstrap = clock.elapsed().as_secs_f64();
    // A shape whose output fills the slots needs no reassembly rotation: none to price.
    let rotate = match step {
        Some(step) => {
            eval.rotate(&re, step).map_err(err)?;
            let clock = Instant::now();
            eval.rotate(&re, step).map_err(err)?;
            clock.elapsed().as_secs_f64()
        }
        None => 0.0,
    };
    let costs = CoeffCosts {
        slots_to_coeffs,
        integer_product,
        pack_step,
        coeff_bootstrap,
        rotate,
    };
    eprintln!(
        "ensi bench coeff: kernel costs: SlotsToCoeffs {slots_to_coeffs:.2} s, integer product \
         {:.2} ms, packing step {:.2} ms (level-0 key switch), coefficient bootstrap \
         {coeff_bootstrap:.1} s, rotation {:.0} ms",
        integer_product * 1e3,
        pack_step * 1e3,
        rotate * 1e3
    );
    Ok(costs)
}
