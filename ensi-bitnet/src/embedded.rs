//! A deterministic tiny BitNet b1.58 model, generated in the crate from a fixed seed, so the CLI
//! and the tests run offline.
//!
//! How the weights are made (all in `f64` with `libm`, then rounded to `f32`, identical on every
//! platform and with or without `std`):
//!
//! 1. A SplitMix64 generator (Steele, Lea & Flood, 2014) is seeded with [`EMBEDDED_SEED`].
//! 2. Each standard normal draw uses two outputs `u1, u2` (53-bit uniforms, `u1` in (0, 1]) and
//!    the Box-Muller cosine branch `sqrt(-2 ln u1) cos(2 pi u2)`.
//! 3. Tensors are drawn in this order: the embedding `[vocab, hidden]` (std 0.5), then per layer
//!    `input_layernorm`, `q_proj`, `k_proj`, `v_proj`, `attn_sub_norm`, `o_proj`,
//!    `post_attention_layernorm`, `gate_proj`, `up_proj`, `ffn_sub_norm`, `down_proj`, then the
//!    final `norm`. Norm weights are `1 + 0.1 z`. Projection latent weights are
//!    `z / sqrt(in_features)`, row-major `[out, in]`, ternarized by absmean
//!    ([`absmean_ternarize`]), so the scales follow the
//!    `Divide` convention like a real checkpoint's.
//!
//! The shape mimics bitnet-b1.58-2B-4T at a small size: ReLU^2 gated FFN, GQA (4 query heads,
//! 2 KV heads), the two sub-norms, tied embeddings, RoPE theta 500000. Its weights are random:
//! the tokens it predicts mean nothing; it exists to exercise and compare pipelines.

use alloc::vec::Vec;

use crate::config::{Activation, Family, ModelConfig};
use crate::error::Result;
use crate::linear::Linear;
use crate::model::{Layer, Model};
use crate::ternary::ScaleConvention;
use crate::ternary::absmean_ternarize;

/// The seed of the embedded model.
pub const EMBEDDED_SEED: u64 = 0x454E_5349_4249_544E; // "ENSIBITN"

/// The configuration of the embedded model: vocabulary 256 (one token per byte), hidden 128,
/// intermediate 320, 2 layers, 4 heads of 32, 2 KV heads.
pub fn embedded_config() -> ModelConfig {
    ModelConfig {
        family: Family::Bitnet,
        vocab_size: 256,
        hidden_size: 128,
        intermediate_size: 320,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 32,
        rms_norm_eps: 1e-5,
        rope_theta: 500_000.0,
        max_position_embeddings: 256,
        hidden_act: Activation::ReluSquared,
        tie_word_embeddings: true,
        weight_scale: ScaleConvention::Divide,
    }
}

/// SplitMix64: a tiny, well-known 64-bit generator (deterministic, not cryptographic).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal draw (Box-Muller, cosine branch).
    pub fn next_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * core::f64::consts::PI * u2)
    }
}

fn normals(rng: &mut SplitMix64, n: usize, mean: f64, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| (mean + std * rng.next_normal()) as f32)
        .collect()
}

fn ternary(rng: &mut SplitMix64, rows: usize, cols: usize) -> Result<Linear> {
    let latent = normals(rng, rows * cols, 0.0, 1.0 / libm::sqrt(cols as f64));
    Ok(Linear::Ternary(absmean_ternarize(rows, cols, &latent)?))
}

/// Latent weights `N(0, 1/cols)` kept dense (as 1bitLLM checkpoints store them).
fn latent(rng: &mut SplitMix64, rows: usize, cols: usize) -> Result<Linear> {
    let w = normals(rng, rows * cols, 0.0, 1.0 / libm::sqrt(cols as f64));
    Ok(Linear::Dense(crate::linear::DenseMatrix::new(
        rows, cols, w,
    )?))
}

/// Builds the embedded model (see the module documentation for how).
pub fn embedded_model() -> Result<Model> {
    random_model(embedded_config(), EMBEDDED_SEED, false)
}

/// A model of any configuration with random weights drawn as the embedded model's are
/// (embedding `N(0, 0.5^2)`, gains `N(1, 0.1^2)`, weights ternarized by absmean from Gaussian
/// latents of variance `1/cols`, so ~1/3 of them are zero and the scales are realistic), for
/// tests and demos of real checkpoint layouts. With `latent` the projections stay dense
/// latents (the 1bitLLM layout, ternarized when loaded); a model without tied embeddings gets
/// its own LM head.
pub fn random_model(c: ModelConfig, seed: u64, latent_weights: bool) -> Result<Model> {
    let mut rng = SplitMix64::new(seed);
    let (h, i) = (c.hidden_size, c.intermediate_size);
    let proj = |rng: &mut SplitMix64, rows: usize, cols: usize| {
        if latent_weights {
            latent(rng, rows, cols)
        } else {
            ternary(rng, rows, cols)
        }
    };
    let embed = normals(&mut rng, c.vocab_size * h, 0.0, 0.5);
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for _ in 0..c.num_hidden_layers {
        let input_layernorm = normals(&mut rng, h, 1.0, 0.1);
        let q_proj = proj(&mut rng, c.q_dim(), h)?;
        let k_proj = proj(&mut rng, c.kv_dim(), h)?;
        let v_proj = proj(&mut rng, c.kv_dim(), h)?;
        let attn_sub_norm = normals(&mut rng, c.q_dim(), 1.0, 0.1);
        let o_proj = proj(&mut rng, h, c.q_dim())?;
        let post_attention_layernorm = normals(&mut rng, h, 1.0, 0.1);
        let gate_proj = proj(&mut rng, i, h)?;
        let up_proj = proj(&mut rng, i, h)?;
        let ffn_sub_norm = normals(&mut rng, i, 1.0, 0.1);
        let down_proj = proj(&mut rng, h, i)?;
        layers.push(Layer {
            input_layernorm,
            q_proj,
            k_proj,
            v_proj,
            attn_sub_norm,
            o_proj,
            post_attention_layernorm,
            gate_proj,
            up_proj,
            ffn_sub_norm,
            down_proj,
        });
    }
    let norm = normals(&mut rng, h, 1.0, 0.1);
    let head = if c.tie_word_embeddings {
        None
    } else {
        Some(normals(
            &mut rng,
            c.vocab_size * h,
            0.0,
            1.0 / libm::sqrt(h as f64),
        ))
    };
    Model::new(c, embed, layers, norm, head)
}
