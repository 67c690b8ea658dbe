//! The reference forward pass against an independent, deliberately naive f64 implementation
//! written here from the formulas (loops over indices, no shared code with the library except
//! reading the weights).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::needless_range_loop)]
// The naive pass is written with explicit index loops on purpose.

mod common;

use common::{tiny_config, tiny_model};
use ensi_bitnet::{
    Activation, AttentionKind, Family, ForwardOptions, Linear, Model, ScaleConvention,
    embedded_model,
};

/// Per-layer outputs and final logits of the naive pass.
struct Naive {
    layer_outputs: Vec<Vec<Vec<f64>>>,
    logits: Vec<Vec<f64>>,
}

fn weights(l: &Linear) -> (Vec<Vec<f64>>, f64, bool) {
    // Returns ternary values as f64 rows, the raw scale, and whether it divides.
    let t = l.as_ternary().expect("ternary");
    let rows = (0..t.rows())
        .map(|r| (0..t.cols()).map(|c| t.get(r, c) as f64).collect())
        .collect();
    (
        rows,
        t.scale().value as f64,
        t.scale().convention == ScaleConvention::Divide,
    )
}

fn bitlinear(l: &Linear, x: &[f64], act_quant: bool) -> Vec<f64> {
    let (w, s, divide) = weights(l);
    let (xin, xs): (Vec<f64>, f64) = if act_quant {
        let mut m = 0.0f64;
        for v in x {
            if v.abs() > m {
                m = v.abs();
            }
        }
        let scale = 127.0 / m.max(1e-5);
        (
            x.iter()
                .map(|v| (v * scale).round_ties_even().clamp(-128.0, 127.0))
                .collect(),
            scale,
        )
    } else {
        (x.to_vec(), 1.0)
    };
    let mut y = vec![0.0; w.len()];
    for r in 0..w.len() {
        let mut acc = 0.0;
        for c in 0..xin.len() {
            acc += w[r][c] * xin[c];
        }
        y[r] = if divide { acc / (xs * s) } else { acc / xs * s };
    }
    y
}

fn rmsnorm(x: &[f64], w: &[f32], eps: f64) -> Vec<f64> {
    let mut ss = 0.0;
    for v in x {
        ss += v * v;
    }
    let r = (ss / x.len() as f64 + eps).sqrt();
    (0..x.len()).map(|i| w[i] as f64 * x[i] / r).collect()
}

fn rope(x: &mut [f64], pos: usize, theta: f64) {
    // rotate_half convention: pairs (i, i + d/2).
    let d = x.len();
    let old = x.to_vec();
    for i in 0..d / 2 {
        let ang = pos as f64 / theta.powf((2 * i) as f64 / d as f64);
        let (c, s) = (ang.cos(), ang.sin());
        x[i] = old[i] * c - old[i + d / 2] * s;
        x[i + d / 2] = old[i + d / 2] * c + old[i] * s;
    }
}

fn naive_forward(m: &Model, tokens: &[u32], opts: &ForwardOptions) -> Naive {
    let c = m.config();
    let (n, hd, h) = (tokens.len(), c.head_dim, c.hidden_size);
    let mut x: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| {
            m.embed_tokens()[t as usize * h..(t as usize + 1) * h]
                .iter()
                .map(|&v| v as f64)
                .collect()
        })
        .collect();
    let mut layer_outputs = vec![];
    for l in m.layers() {
        let normed: Vec<Vec<f64>> = x
            .iter()
            .map(|r| rmsnorm(r, &l.input_layernorm, c.rms_norm_eps))
            .collect();
        let mut q: Vec<Vec<f64>> = normed
            .iter()
            .map(|r| bitlinear(&l.q_proj, r, opts.act_quant))
            .collect();
        let mut k: Vec<Vec<f64>> = normed
            .iter()
            .map(|r| bitlinear(&l.k_proj, r, opts.act_quant))
            .collect();
        let v: Vec<Vec<f64>> = normed
            .iter()
            .map(|r| bitlinear(&l.v_proj, r, opts.act_quant))
            .collect();
        for p in 0..n {
            for hh in 0..c.num_attention_heads {
                rope(&mut q[p][hh * hd..(hh + 1) * hd], p, c.rope_theta);
            }
            for hh in 0..c.num_key_value_heads {
                rope(&mut k[p][hh * hd..(hh + 1) * hd], p, c.rope_theta);
            }
        }
        let mut att = vec![vec![0.0; c.num_attention_heads * hd]; n];
        for hh in 0..c.num_attention_heads {
            let kvh = hh * c.num_key_value_heads / c.num_attention_heads;
            for i in 0..n {
                let mut w = vec![0.0; n];
                for j in 0..=i {
                    let mut dot = 0.0;
                    for e in 0..hd {
                        dot += q[i][hh * hd + e] * k[j][kvh * hd + e];
                    }
                    w[j] = dot / (hd as f64).sqrt();
                }
                match opts.attention {
                    AttentionKind::Softmax => {
                        let mx = w[..=i].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let z: f64 = w[..=i].iter().map(|s| (s - mx).exp()).sum();
                        for j in 0..=i {
                            w[j] = (w[j] - mx).exp() / z;
                        }
                    }
                    _ => {
                        for j in 0..=i {
                            w[j] = 1.0 / (1.0 + (-(w[j] - (n as f64).ln())).exp());
                        }
                    }
                }
                for j in 0..=i {
                    for e in 0..hd {
                        att[i][hh * hd + e] += w[j] * v[j][kvh * hd + e];
                    }
                }
            }
        }
        for i in 0..n {
            let s = rmsnorm(&att[i], &l.attn_sub_norm, c.rms_norm_eps);
            let o = bitlinear(&l.o_proj, &s, opts.act_quant);
            for e in 0..h {
                x[i][e] += o[e];
            }
            let f = rmsnorm(&x[i], &l.post_attention_layernorm, c.rms_norm_eps);
            let g = bitlinear(&l.gate_proj, &f, opts.act_quant);
            let u = bitlinear(&l.up_proj, &f, opts.act_quant);
            let a: Vec<f64> = (0..g.len())
                .map(|e| {
                    let act = match c.hidden_act {
                        Activation::ReluSquared => g[e].max(0.0).powi(2),
                        Activation::Silu => g[e] / (1.0 + (-g[e]).exp()),
                    };
                    act * u[e]
                })
                .collect();
            let s = rmsnorm(&a, &l.ffn_sub_norm, c.rms_norm_eps);
            let d = bitlinear(&l.down_proj, &s, opts.act_quant);
            for e in 0..h {
                x[i][e] += d[e];
            }
        }
        layer_outputs.push(x.clone());
    }
    let head = m.lm_head();
    let logits = x
        .iter()
        .map(|r| {
            let f = rmsnorm(r, m.norm(), c.rms_norm_eps);
            (0..c.vocab_size)
                .map(|t| (0..h).map(|e| head[t * h + e] as f64 * f[e]).sum())
                .collect()
        })
        .collect();
    Naive {
        layer_outputs,
        logits,
    }
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / scale
}

const ALL_OPTIONS: [ForwardOptions; 4] = [
    ForwardOptions::new(AttentionKind::Softmax, true),
    ForwardOptions::new(AttentionKind::Softmax, false),
    ForwardOptions::new(AttentionKind::Sigmoid, true),
    ForwardOptions::new(AttentionKind::Sigmoid, false),
];

/// Tolerances: f64 library vs f64 naive within 1e-10 (relative to the largest magnitude;
/// only summation order differs); f32 library vs f64 naive within 2e-3 without activation
/// quantization (f32 rounding over two layers).
fn check_model(m: &Model, tokens: &[u32]) {
    for opts in ALL_OPTIONS {
        let naive = naive_forward(m, tokens, &opts);
        let t64 = m.forward::<f64>(tokens, &opts).unwrap();
        for (li, lt) in t64.layers.iter().enumerate() {
            for p in 0..tokens.len() {
                let e = max_rel(lt.output.row(p), &naive.layer_outputs[li][p]);
                assert!(e < 1e-10, "layer {li} position {p} {opts:?}: rel err {e}");
            }
        }
        for p in 0..tokens.len() {
            let e = max_rel(t64.logits.row(p), &naive.logits[p]);
            assert!(e < 1e-10, "f64 logits position {p} {opts:?}: rel err {e}");
        }
        if !opts.act_quant {
            let t32 = m.forward::<f32>(tokens, &opts).unwrap();
            for p in 0..tokens.len() {
                let l32: Vec<f64> = t32.logits.row(p).iter().map(|&v| v as f64).collect();
                let e = max_rel(&l32, &naive.logits[p]);
                assert!(e < 2e-3, "f32 logits position {p} {opts:?}: rel err {e}");
            }
        }
    }
}

#[test]
fn tiny_bitnet_relu2_gqa_tied_divide() {
    let m = tiny_model(
        tiny_config(
            Family::Bitnet,
            Activation::ReluSquared,
            true,
            ScaleConvention::Divide,
        ),
        7,
    );
    check_model(&m, &[1, 5, 10, 0, 3, 3]);
}

#[test]
fn tiny_llama1bit_silu_untied_multiply() {
    let m = tiny_model(
        tiny_config(
            Family::Llama1Bit,
            Activation::Silu,
            false,
            ScaleConvention::Multiply,
        ),
        99,
    );
    check_model(&m, &[2, 9, 4, 7]);
}

#[test]
fn single_token_and_embedded_model() {
    let m = tiny_model(
        tiny_config(
            Family::Bitnet,
            Activation::ReluSquared,
            true,
            ScaleConvention::Divide,
        ),
        3,
    );
    check_model(&m, &[4]);
    let e = embedded_model().unwrap();
    check_model(&e, &[72, 101, 108, 108, 111]);
}

#[test]
fn trace_is_consistent() {
    let m = embedded_model().unwrap();
    let t = m
        .forward::<f64>(&[1, 2, 3, 4], &ForwardOptions::default())
        .unwrap();
    assert_eq!(t.layers.len(), 2);
    for (i, l) in t.layers.iter().enumerate() {
        let input = if i == 0 {
            &t.embeddings
        } else {
            &t.layers[i - 1].output
        };
        assert_eq!(&l.input, input);
        assert_eq!(l.scores.len(), 4);
        assert_eq!(l.probs[0].rows(), 4);
        for r in 0..4 {
            for c in 0..128 {
                assert_eq!(
                    l.attn_residual.get(r, c),
                    l.input.get(r, c) + l.o_proj.get(r, c)
                );
                assert_eq!(
                    l.output.get(r, c),
                    l.attn_residual.get(r, c) + l.down.get(r, c)
                );
            }
        }
        // Position 0 is not rotated.
        assert_eq!(l.q_rope.row(0), l.q.row(0));
    }
    assert_eq!(t.logits.rows(), 4);
    assert_eq!(t.logits.cols(), 256);
}

#[test]
fn greedy_decoding_appends_the_argmax_each_step() {
    let m = embedded_model().unwrap();
    let opts = ForwardOptions::new(AttentionKind::Sigmoid, false);
    let new = ensi_bitnet::generate_greedy::<f64>(&m, &[10, 20], 3, &opts).unwrap();
    assert_eq!(new.len(), 3);
    let mut tokens = vec![10u32, 20];
    for &t in &new {
        let naive = naive_forward(&m, &tokens, &opts);
        let last = naive.logits.last().unwrap();
        let best = (0..last.len()).fold(0, |b, i| if last[i] > last[b] { i } else { b });
        assert_eq!(t as usize, best);
        tokens.push(t);
    }
    // Errors, not panics, on bad input.
    assert_eq!(
        m.forward::<f32>(&[], &opts).unwrap_err(),
        ensi_bitnet::Error::EmptyInput
    );
    assert!(matches!(
        m.forward::<f32>(&[1, 256], &opts),
        Err(ensi_bitnet::Error::TokenOutOfRange {
            position: 1,
            token: 256,
            ..
        })
    ));
    assert!(matches!(
        m.forward::<f32>(&[0; 257], &opts),
        Err(ensi_bitnet::Error::SequenceTooLong { len: 257, max: 256 })
    ));
}

/// The cached decoding: with softmax attention (which does not depend on the length) it is
/// exactly the full recomputation, token for token and logit for logit against the naive pass;
/// with sigmoid attention its first choice is the prompt's own (the bias of the prompt's
/// length), and later ones stay close to the full recomputation.
#[test]
fn cached_decoding_reuses_the_earlier_rows() {
    let m = embedded_model().unwrap();
    let prompt = [72u32, 105, 33];
    let soft = ForwardOptions::new(AttentionKind::Softmax, false);
    let (tokens, logits) =
        ensi_bitnet::generate_greedy_cached::<f64>(&m, &prompt, 4, &soft).unwrap();
    assert_eq!(
        tokens,
        ensi_bitnet::generate_greedy::<f64>(&m, &prompt, 4, &soft).unwrap()
    );
    let mut seq = prompt.to_vec();
    for (t, l) in tokens.iter().zip(&logits) {
        let naive = naive_forward(&m, &seq, &soft);
        let last = naive.logits.last().unwrap();
        let err = last
            .iter()
            .zip(l)
            .fold(0.0f64, |e, (a, b)| e.max((a - b).abs()));
        assert!(err < 1e-9, "{err}");
        seq.push(*t);
    }
    let sig = ForwardOptions::new(AttentionKind::Sigmoid, false);
    let (tokens, logits) =
        ensi_bitnet::generate_greedy_cached::<f64>(&m, &prompt, 4, &sig).unwrap();
    let naive = naive_forward(&m, &prompt, &sig);
    let err = naive
        .logits
        .last()
        .unwrap()
        .iter()
        .zip(&logits[0])
        .fold(0.0f64, |e, (a, b)| e.max((a - b).abs()));
    assert!(err < 1e-9, "{err}");
    assert_eq!(tokens.len(), 4);
    assert!(
        ensi_bitnet::generate_greedy_cached::<f64>(&m, &prompt, 0, &sig)
            .unwrap()
            .0
            .is_empty()
    );
}
