//! The plaintext reference forward pass, with every intermediate tensor kept in a [`Trace`].
//!
//! Pre-norm decoder as in transformers' `BitNetForCausalLM` (bitnet-b1.58-2B-4T) and 1bitLLM's
//! Llama-with-BitLinear: embedding, then per layer
//! `input_layernorm -> q/k/v BitLinear -> RoPE -> causal attention (GQA) -> sub-norm ->
//! o_proj -> residual -> post_attention_layernorm -> gate/up BitLinear -> act(gate) * up ->
//! sub-norm -> down_proj -> residual`, then the final norm and the LM head.
//!
//! Differences from transformers that matter at the last bits: everything runs in `F` (`f32`
//! or `f64`) where transformers runs the 2B-4T model in bf16; RoPE angles are computed in `F`.

use alloc::vec;
use alloc::vec::Vec;

use crate::config::Activation;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::linear::Linear;
use crate::matrix::Matrix;
use crate::model::{Layer, Model};
use crate::ops::{
    AttentionKind, apply_rope, argmax, attention_head, relu_squared, rms_norm, rope_angles,
    sigmoid_attention_bias, silu,
};
use crate::ternary::absmean_ternarize;

/// Switches of the reference forward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForwardOptions {
    /// Softmax (as trained) or sigmoid attention (as ENSI evaluates under encryption).
    pub attention: AttentionKind,
    /// Per-token int8 absmax quantization of every BitLinear input (BitNet b1.58's W1.58A8).
    /// Encrypted inference cannot round, so it runs with this off.
    pub act_quant: bool,
    /// Absmean ternarization of dense (latent) layers at every call, as transformers'
    /// `AutoBitLinear` in online mode. Only layers kept dense at load time
    /// ([`LoadOptions::weight_quant`](crate::LoadOptions::weight_quant) off) are affected;
    /// ternary layers are ternary either way. With it off, dense layers run at full precision.
    pub weight_quant: bool,
}

impl ForwardOptions {
    /// Options with the given attention and activation quantization, weight quantization on.
    pub const fn new(attention: AttentionKind, act_quant: bool) -> Self {
        Self {
            attention,
            act_quant,
            weight_quant: true,
        }
    }
}

impl Default for ForwardOptions {
    /// The model as trained: softmax attention, activation and weight quantization on.
    fn default() -> Self {
        Self::new(AttentionKind::Softmax, true)
    }
}

/// Every intermediate tensor of one decoder layer; matrices are `[seq, width]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTrace<F> {
    /// Residual stream entering the layer, `[seq, hidden]`.
    pub input: Matrix<F>,
    /// `input_layernorm(input)`.
    pub attn_norm: Matrix<F>,
    /// `q_proj` output before RoPE, `[seq, heads * head_dim]` (head `h` is columns
    /// `h * head_dim .. (h + 1) * head_dim`).
    pub q: Matrix<F>,
    /// `k_proj` output before RoPE, `[seq, kv_heads * head_dim]`.
    pub k: Matrix<F>,
    /// `v_proj` output, `[seq, kv_heads * head_dim]`.
    pub v: Matrix<F>,
    /// Queries after RoPE.
    pub q_rope: Matrix<F>,
    /// Keys after RoPE.
    pub k_rope: Matrix<F>,
    /// Per query head: `Q K^T / sqrt(head_dim)`, `[seq, seq]`, unmasked.
    pub scores: Vec<Matrix<F>>,
    /// Per query head: attention weights after softmax or sigmoid and the causal mask.
    pub probs: Vec<Matrix<F>>,
    /// Concatenated head outputs `probs V`, `[seq, heads * head_dim]`.
    pub attn_output: Matrix<F>,
    /// `attn_sub_norm(attn_output)` (`inner_attn_ln` in 1bitLLM models).
    pub attn_sub_norm: Matrix<F>,
    /// `o_proj(attn_sub_norm)`, `[seq, hidden]`.
    pub o_proj: Matrix<F>,
    /// `input + o_proj`.
    pub attn_residual: Matrix<F>,
    /// `post_attention_layernorm(attn_residual)`.
    pub ffn_norm: Matrix<F>,
    /// `gate_proj(ffn_norm)`, `[seq, intermediate]`.
    pub gate: Matrix<F>,
    /// `up_proj(ffn_norm)`, `[seq, intermediate]`.
    pub up: Matrix<F>,
    /// `act(gate) * up` (ReLU^2 or SiLU).
    pub ffn_act: Matrix<F>,
    /// `ffn_sub_norm(ffn_act)` (`ffn_layernorm` in 1bitLLM models).
    pub ffn_sub_norm: Matrix<F>,
    /// `down_proj(ffn_sub_norm)`, `[seq, hidden]`.
    pub down: Matrix<F>,
    /// `attn_residual + down`: the residual stream leaving the layer.
    pub output: Matrix<F>,
}

/// Every intermediate tensor of a forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace<F> {
    /// The input token ids.
    pub tokens: Vec<u32>,
    /// The options the pass ran with.
    pub options: ForwardOptions,
    /// Token embeddings, `[seq, hidden]`.
    pub embeddings: Matrix<F>,
    /// One trace per decoder layer.
    pub layers: Vec<LayerTrace<F>>,
    /// `norm(last layer output)`, `[seq, hidden]`: the final hidden states.
    pub final_hidden: Matrix<F>,
    /// `final_hidden * lm_head^T`, `[seq, vocab]`.
    pub logits: Matrix<F>,
}

impl<F: Float> Trace<F> {
    /// Logits of the last position.
    pub fn last_logits(&self) -> &[F] {
        self.logits.row(self.logits.rows() - 1)
    }

    /// Greedy next token: argmax of the last position's logits (first index on ties).
    pub fn next_token(&self) -> u32 {
        argmax(self.last_logits()).map_or(0, |i| i as u32)
    }
}

fn linear_rows<F: Float>(w: &Linear, x: &Matrix<F>, options: &ForwardOptions) -> Result<Matrix<F>> {
    let ternarized;
    let w = match w {
        Linear::Dense(d) if options.weight_quant => {
            ternarized = Linear::Ternary(absmean_ternarize(d.rows(), d.cols(), d.values())?);
            &ternarized
        }
        _ => w,
    };
    let mut out = Matrix::zeros(x.rows(), w.rows());
    for r in 0..x.rows() {
        w.forward(x.row(r), options.act_quant, out.row_mut(r))?;
    }
    Ok(out)
}

fn norm_rows<F: Float>(x: &Matrix<F>, weight: &[f32], eps: f64) -> Result<Matrix<F>> {
    let mut out = Matrix::zeros(x.rows(), x.cols());
    for r in 0..x.rows() {
        rms_norm(x.row(r), weight, eps, out.row_mut(r))?;
    }
    Ok(out)
}

fn add<F: Float>(a: &Matrix<F>, b: &Matrix<F>) -> Matrix<F> {
    let data = a
        .as_slice()
        .iter()
        .zip(b.as_slice())
        .map(|(&x, &y)| x + y)
        .collect();
    Matrix::from_vec(a.rows(), a.cols(), data).unwrap_or_else(|| Matrix::zeros(a.rows(), a.cols()))
}

fn head_slice<F: Float>(x: &Matrix<F>, head: usize, d: usize) -> Matrix<F> {
    let mut out = Matrix::zeros(x.rows(), d);
    for r in 0..x.rows() {
        out.row_mut(r)
            .copy_from_slice(&x.row(r)[head * d..(head + 1) * d]);
    }
    out
}

fn layer_forward<F: Float>(
    model: &Model,
    layer: &Layer,
    input: Matrix<F>,
    rope: &[(Vec<F>, Vec<F>)],
    options: &ForwardOptions,
) -> Result<LayerTrace<F>> {
    let c = model.config();
    let (seq, d) = (input.rows(), c.head_dim);
    let eps = c.rms_norm_eps;
    let attn_norm = norm_rows(&input, &layer.input_layernorm, eps)?;
    let q = linear_rows(&layer.q_proj, &attn_norm, options)?;
    let k = linear_rows(&layer.k_proj, &attn_norm, options)?;
    let v = linear_rows(&layer.v_proj, &attn_norm, options)?;
    let mut q_rope = q.clone();
    let mut k_rope = k.clone();
    for (pos, (cos, sin)) in rope.iter().enumerate().take(seq) {
        for h in 0..c.num_attention_heads {
            apply_rope(&mut q_rope.row_mut(pos)[h * d..(h + 1) * d], cos, sin)?;
        }
        for h in 0..c.num_key_value_heads {
            apply_rope(&mut k_rope.row_mut(pos)[h * d..(h + 1) * d], cos, sin)?;
        }
    }
    // GQA: query head h reads KV head h / (heads / kv_heads), as transformers' repeat_kv.
    let group = c.num_attention_heads / c.num_key_value_heads;
    let mut scores = Vec::with_capacity(c.num_attention_heads);
    let mut probs = Vec::with_capacity(c.num_attention_heads);
    let mut attn_output = Matrix::zeros(seq, c.q_dim());
    for h in 0..c.num_attention_heads {
        let kv = h / group;
        let head = attention_head(
            &head_slice(&q_rope, h, d),
            &head_slice(&k_rope, kv, d),
            &head_slice(&v, kv, d),
            options.attention,
        )?;
        for r in 0..seq {
            attn_output.row_mut(r)[h * d..(h + 1) * d].copy_from_slice(head.output.row(r));
        }
        scores.push(head.scores);
        probs.push(head.probs);
    }
    let attn_sub_norm = norm_rows(&attn_output, &layer.attn_sub_norm, eps)?;
    let o_proj = linear_rows(&layer.o_proj, &attn_sub_norm, options)?;
    let attn_residual = add(&input, &o_proj);
    let ffn_norm = norm_rows(&attn_residual, &layer.post_attention_layernorm, eps)?;
    let gate = linear_rows(&layer.gate_proj, &ffn_norm, options)?;
    let up = linear_rows(&layer.up_proj, &ffn_norm, options)?;
    let act: fn(F) -> F = match c.hidden_act {
        Activation::ReluSquared => relu_squared,
        Activation::Silu => silu,
    };
    let act_data = gate
        .as_slice()
        .iter()
        .zip(up.as_slice())
        .map(|(&g, &u)| act(g) * u)
        .collect();
    let ffn_act = Matrix::from_vec(seq, c.intermediate_size, act_data)
        .unwrap_or_else(|| Matrix::zeros(seq, c.intermediate_size));
    let ffn_sub_norm = norm_rows(&ffn_act, &layer.ffn_sub_norm, eps)?;
    let down = linear_rows(&layer.down_proj, &ffn_sub_norm, options)?;
    let output = add(&attn_residual, &down);
    Ok(LayerTrace {
        input,
        attn_norm,
        q,
        k,
        v,
        q_rope,
        k_rope,
        scores,
        probs,
        attn_output,
        attn_sub_norm,
        o_proj,
        attn_residual,
        ffn_norm,
        gate,
        up,
        ffn_act,
        ffn_sub_norm,
        down,
        output,
    })
}

/// Runs the model on `tokens` (positions `0..tokens.len()`) and returns every intermediate
/// tensor and the logits of every position.
///
/// Errors on an empty input, a token outside the vocabulary or more tokens than
/// `max_position_embeddings`.
pub fn forward<F: Float>(
    model: &Model,
    tokens: &[u32],
    options: &ForwardOptions,
) -> Result<Trace<F>> {
    let c = model.config();
    if tokens.is_empty() {
        return Err(Error::EmptyInput);
    }
    if tokens.len() > c.max_position_embeddings {
        return Err(Error::SequenceTooLong {
            len: tokens.len(),
            max: c.max_position_embeddings,
        });
    }
    let (seq, h) = (tokens.len(), c.hidden_size);
    let mut embeddings = Matrix::zeros(seq, h);
    for (position, &token) in tokens.iter().enumerate() {
        let e = model.embedding(token).ok_or(Error::TokenOutOfRange {
            position,
            token,
            vocab_size: c.vocab_size,
        })?;
        for (o, &v) in embeddings.row_mut(position).iter_mut().zip(e) {
            *o = F::from_f32(v);
        }
    }
    let rope: Vec<_> = (0..seq)
        .map(|p| rope_angles::<F>(p, c.head_dim, c.rope_theta))
        .collect();
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    let mut x = embeddings.clone();
    for layer in model.layers() {
        let t = layer_forward(model, layer, x, &rope, options)?;
        x = t.output.clone();
        layers.push(t);
    }
    let final_hidden = norm_rows(&x, model.norm(), c.rms_norm_eps)?;
    let mut logits = Matrix::zeros(seq, c.vocab_size);
    for r in 0..seq {
        head_row(model, final_hidden.row(r), logits.row_mut(r));
    }
    Ok(Trace {
        tokens: tokens.to_vec(),
        options: *options,
        embeddings,
        layers,
        final_hidden,
        logits,
    })
}

/// The LM head on one final hidden row: `out[t] = lm_head[t] . row`.
fn head_row<F: Float>(model: &Model, row: &[F], out: &mut [F]) {
    let h = row.len();
    for (t, l) in out.iter_mut().enumerate() {
        let mut acc = F::ZERO;
        for (&w, &v) in model.lm_head()[t * h..(t + 1) * h].iter().zip(row) {
            acc += F::from_f32(w) * v;
        }
        *l = acc;
    }
}

/// Greedy decoding: appends `steps` tokens, each the argmax of the last logits (the whole
/// prefix is recomputed each step: a reference, not a fast path). Returns the new tokens only.
pub fn generate_greedy<F: Float>(
    model: &Model,
    prompt: &[u32],
    steps: usize,
    options: &ForwardOptions,
) -> Result<Vec<u32>> {
    let mut tokens = prompt.to_vec();
    let mut out = vec![];
    for _ in 0..steps {
        let next = forward::<F>(model, &tokens, options)?.next_token();
        tokens.push(next);
        out.push(next);
    }
    Ok(out)
}

/// Greedy decoding as a server with a key/value cache computes it under sigmoid attention
/// with the bias `-ln n`: the prompt is one pass with the bias of its length, and each new
/// token's row attends with the bias of the sequence up to it, to keys and values of the
/// earlier positions **as they were computed** (the cache is never recomputed). Softmax
/// attention does not depend on the length, so there this equals [`generate_greedy`]; for
/// sigmoid attention the earlier rows of layers after the first differ slightly from a full
/// recomputation at the new length, and this is the reference of an encrypted cache.
/// Returns the new tokens and the logits each was chosen from.
pub fn generate_greedy_cached<F: Float>(
    model: &Model,
    prompt: &[u32],
    steps: usize,
    options: &ForwardOptions,
) -> Result<(Vec<u32>, Vec<Vec<F>>)> {
    let c = model.config();
    let with_bias = |n: usize| {
        let mut o = *options;
        if o.attention == AttentionKind::Sigmoid {
            o.attention = AttentionKind::SigmoidBias(sigmoid_attention_bias::<f64>(n));
        }
        o
    };
    let trace = forward::<F>(model, prompt, &with_bias(prompt.len()))?;
    // Every layer's input rows so far: they fix the cached keys and values.
    let mut inputs: Vec<Matrix<F>> = trace.layers.iter().map(|l| l.input.clone()).collect();
    let mut logits = trace.logits.row(prompt.len() - 1).to_vec();
    let (mut tokens, mut chosen) = (vec![], vec![]);
    for step in 0..steps {
        let next = argmax(&logits).map_or(0, |i| i as u32);
        tokens.push(next);
        chosen.push(logits);
        if step + 1 == steps {
            break;
        }
        let n = prompt.len() + tokens.len();
        if n > c.max_position_embeddings {
            return Err(Error::SequenceTooLong {
                len: n,
                max: c.max_position_embeddings,
            });
        }
        let e = model.embedding(next).ok_or(Error::TokenOutOfRange {
            position: n - 1,
            token: next,
            vocab_size: c.vocab_size,
        })?;
        let mut x: Vec<F> = e.iter().map(|&v| F::from_f32(v)).collect();
        let rope: Vec<_> = (0..n)
            .map(|p| rope_angles::<F>(p, c.head_dim, c.rope_theta))
            .collect();
        for (layer, seen) in model.layers().iter().zip(&mut inputs) {
            let mut data = seen.as_slice().to_vec();
            data.extend_from_slice(&x);
            let actual = data.len();
            *seen = Matrix::from_vec(n, c.hidden_size, data).ok_or(Error::LengthMismatch {
                what: "cached layer inputs".into(),
                expected: n * c.hidden_size,
                actual,
            })?;
            // The earlier rows' keys and values come from their stored inputs, unchanged;
            // only the new row's output is kept.
            let t = layer_forward(model, layer, seen.clone(), &rope, &with_bias(n))?;
            x = t.output.row(n - 1).to_vec();
        }
        let mut last = vec![F::ZERO; c.hidden_size];
        rms_norm(&x, model.norm(), c.rms_norm_eps, &mut last)?;
        logits = vec![F::ZERO; c.vocab_size];
        head_row(model, &last, &mut logits);
    }
    Ok((tokens, chosen))
}

impl Model {
    /// [`forward`] as a method.
    pub fn forward<F: Float>(&self, tokens: &[u32], options: &ForwardOptions) -> Result<Trace<F>> {
        forward(self, tokens, options)
    }
}
