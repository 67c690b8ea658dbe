//! Shared test helpers: a tiny random model built directly from ternary values.
#![allow(dead_code)]

use ensi_bitnet::{
    Activation, Family, Layer, Linear, Model, ModelConfig, ScaleConvention, TernaryMatrix,
    WeightScale,
};

/// xorshift64*: a generator independent of the crate's SplitMix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn trit(&mut self) -> i8 {
        (self.next() % 3) as i8 - 1
    }
}

pub fn tiny_config(
    family: Family,
    act: Activation,
    tied: bool,
    convention: ScaleConvention,
) -> ModelConfig {
    ModelConfig {
        family,
        vocab_size: 11,
        hidden_size: 16,
        intermediate_size: 24,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 4,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        max_position_embeddings: 32,
        hidden_act: act,
        tie_word_embeddings: tied,
        weight_scale: convention,
    }
}

fn vecf(rng: &mut Rng, n: usize, base: f32, amp: f32) -> Vec<f32> {
    (0..n).map(|_| base + amp * rng.uniform()).collect()
}

fn tern(rng: &mut Rng, rows: usize, cols: usize, convention: ScaleConvention) -> Linear {
    let values = (0..rows * cols).map(|_| rng.trit()).collect();
    let value = 0.5 + rng.uniform().abs() * 2.0;
    Linear::Ternary(
        TernaryMatrix::new(rows, cols, values, WeightScale { value, convention }).unwrap(),
    )
}

pub fn tiny_model(config: ModelConfig, seed: u64) -> Model {
    let mut rng = Rng(seed | 1);
    let c = &config;
    let (h, i, q, kv) = (c.hidden_size, c.intermediate_size, c.q_dim(), c.kv_dim());
    let conv = c.weight_scale;
    let embed = vecf(&mut rng, c.vocab_size * h, 0.0, 1.0);
    let layers = (0..c.num_hidden_layers)
        .map(|_| Layer {
            input_layernorm: vecf(&mut rng, h, 1.0, 0.3),
            q_proj: tern(&mut rng, q, h, conv),
            k_proj: tern(&mut rng, kv, h, conv),
            v_proj: tern(&mut rng, kv, h, conv),
            attn_sub_norm: vecf(&mut rng, q, 1.0, 0.3),
            o_proj: tern(&mut rng, h, q, conv),
            post_attention_layernorm: vecf(&mut rng, h, 1.0, 0.3),
            gate_proj: tern(&mut rng, i, h, conv),
            up_proj: tern(&mut rng, i, h, conv),
            ffn_sub_norm: vecf(&mut rng, i, 1.0, 0.3),
            down_proj: tern(&mut rng, h, i, conv),
        })
        .collect();
    let norm = vecf(&mut rng, h, 1.0, 0.3);
    let lm_head = (!c.tie_word_embeddings).then(|| vecf(&mut rng, c.vocab_size * h, 0.0, 1.0));
    Model::new(config, embed, layers, norm, lm_head).unwrap()
}
