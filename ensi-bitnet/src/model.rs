//! The BitNet b1.58 model: weights of every layer, checked against the configuration.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::linear::Linear;

/// One decoder layer (transformers' naming; `model.layers.{i}.` prefix in checkpoints).
///
/// ```text
/// h   = x + o_proj(attn_sub_norm(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))))
///                                          where n = input_layernorm(x)
/// out = h + down_proj(ffn_sub_norm(act(gate_proj(m)) * up_proj(m)))   where m = post_attention_layernorm(h)
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// RMSNorm weight before attention, `[hidden]`.
    pub input_layernorm: Vec<f32>,
    /// Query projection, `[heads * head_dim, hidden]`.
    pub q_proj: Linear,
    /// Key projection, `[kv_heads * head_dim, hidden]`.
    pub k_proj: Linear,
    /// Value projection, `[kv_heads * head_dim, hidden]`.
    pub v_proj: Linear,
    /// RMSNorm weight before `o_proj` (`attn_sub_norm` / `inner_attn_ln`), `[heads * head_dim]`.
    pub attn_sub_norm: Vec<f32>,
    /// Output projection, `[hidden, heads * head_dim]`.
    pub o_proj: Linear,
    /// RMSNorm weight before the FFN, `[hidden]`.
    pub post_attention_layernorm: Vec<f32>,
    /// FFN gate projection, `[intermediate, hidden]`.
    pub gate_proj: Linear,
    /// FFN up projection, `[intermediate, hidden]`.
    pub up_proj: Linear,
    /// RMSNorm weight before `down_proj` (`ffn_sub_norm` / `ffn_layernorm`), `[intermediate]`.
    pub ffn_sub_norm: Vec<f32>,
    /// FFN down projection, `[hidden, intermediate]`.
    pub down_proj: Linear,
}

impl Layer {
    /// The seven projections in the order a layer runs them: q, k, v, o, gate, up, down.
    pub fn projections(&self) -> [&Linear; 7] {
        [
            &self.q_proj,
            &self.k_proj,
            &self.v_proj,
            &self.o_proj,
            &self.gate_proj,
            &self.up_proj,
            &self.down_proj,
        ]
    }
}

/// A complete model: configuration, embedding table, layers, final norm and LM head.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    config: ModelConfig,
    embed_tokens: Vec<f32>,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    lm_head: Option<Vec<f32>>,
}

fn check_vec(name: &str, v: &[f32], len: usize) -> Result<()> {
    if v.len() != len {
        return Err(Error::ShapeMismatch {
            name: name.into(),
            expected: vec![len],
            actual: vec![v.len()],
        });
    }
    if let Some(index) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::InvalidValue {
            name: name.into(),
            index,
            reason: "not finite",
        });
    }
    Ok(())
}

fn check_linear(name: &str, l: &Linear, rows: usize, cols: usize) -> Result<()> {
    if l.rows() != rows || l.cols() != cols {
        return Err(Error::ShapeMismatch {
            name: name.into(),
            expected: vec![rows, cols],
            actual: vec![l.rows(), l.cols()],
        });
    }
    Ok(())
}

impl Model {
    /// Assembles a model, checking every shape against `config` (errors name the tensor as a
    /// checkpoint would). `lm_head` must be `None` exactly when `config.tie_word_embeddings`.
    pub fn new(
        config: ModelConfig,
        embed_tokens: Vec<f32>,
        layers: Vec<Layer>,
        norm: Vec<f32>,
        lm_head: Option<Vec<f32>>,
    ) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let (h, q, kv, i) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
        let vocab_hidden = c.vocab_size * h;
        if embed_tokens.len() != vocab_hidden {
            return Err(Error::ShapeMismatch {
                name: "model.embed_tokens.weight".into(),
                expected: vec![c.vocab_size, h],
                actual: vec![embed_tokens.len()],
            });
        }
        if let Some(index) = embed_tokens.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidValue {
                name: "model.embed_tokens.weight".into(),
                index,
                reason: "not finite",
            });
        }
        if layers.len() != c.num_hidden_layers {
            return Err(Error::InvalidConfig {
                key: "num_hidden_layers",
                reason: format!(
                    "{} layers given, config says {}",
                    layers.len(),
                    c.num_hidden_layers
                ),
            });
        }
        for (n, l) in layers.iter().enumerate() {
            let p = |s: &str| -> String { format!("model.layers.{n}.{s}") };
            check_vec(&p("input_layernorm.weight"), &l.input_layernorm, h)?;
            check_linear(&p("self_attn.q_proj.weight"), &l.q_proj, q, h)?;
            check_linear(&p("self_attn.k_proj.weight"), &l.k_proj, kv, h)?;
            check_linear(&p("self_attn.v_proj.weight"), &l.v_proj, kv, h)?;
            check_vec(
                &p(&format!("{}.weight", c.family.attn_sub_norm())),
                &l.attn_sub_norm,
                q,
            )?;
            check_linear(&p("self_attn.o_proj.weight"), &l.o_proj, h, q)?;
            check_vec(
                &p("post_attention_layernorm.weight"),
                &l.post_attention_layernorm,
                h,
            )?;
            check_linear(&p("mlp.gate_proj.weight"), &l.gate_proj, i, h)?;
            check_linear(&p("mlp.up_proj.weight"), &l.up_proj, i, h)?;
            check_vec(
                &p(&format!("{}.weight", c.family.ffn_sub_norm())),
                &l.ffn_sub_norm,
                i,
            )?;
            check_linear(&p("mlp.down_proj.weight"), &l.down_proj, h, i)?;
        }
        check_vec("model.norm.weight", &norm, h)?;
        match (&lm_head, c.tie_word_embeddings) {
            (None, true) => {}
            (Some(w), false) => {
                if w.len() != vocab_hidden {
                    return Err(Error::ShapeMismatch {
                        name: "lm_head.weight".into(),
                        expected: vec![c.vocab_size, h],
                        actual: vec![w.len()],
                    });
                }
                if let Some(index) = w.iter().position(|x| !x.is_finite()) {
                    return Err(Error::InvalidValue {
                        name: "lm_head.weight".into(),
                        index,
                        reason: "not finite",
                    });
                }
            }
            (None, false) => {
                return Err(Error::MissingTensor {
                    name: "lm_head.weight".into(),
                });
            }
            (Some(_), true) => {
                return Err(Error::InvalidConfig {
                    key: "tie_word_embeddings",
                    reason: "an LM head was given for a model with tied embeddings".into(),
                });
            }
        }
        Ok(Self {
            config,
            embed_tokens,
            layers,
            norm,
            lm_head,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The embedding table, row-major `[vocab, hidden]`.
    pub fn embed_tokens(&self) -> &[f32] {
        &self.embed_tokens
    }

    /// The embedding of `token` (`None` if outside the vocabulary).
    pub fn embedding(&self, token: u32) -> Option<&[f32]> {
        let h = self.config.hidden_size;
        let t = usize::try_from(token).ok()?;
        (t < self.config.vocab_size).then(|| &self.embed_tokens[t * h..(t + 1) * h])
    }

    /// The decoder layers.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The final RMSNorm weight (`model.norm.weight`), `[hidden]`.
    pub fn norm(&self) -> &[f32] {
        &self.norm
    }

    /// The LM head, row-major `[vocab, hidden]`: `lm_head.weight`, or the embedding table when
    /// the embeddings are tied. Not quantized (a plaintext product in the encrypted pipeline).
    pub fn lm_head(&self) -> &[f32] {
        self.lm_head.as_deref().unwrap_or(&self.embed_tokens)
    }

    /// Whether the LM head is a separate `lm_head.weight` tensor.
    pub fn has_separate_lm_head(&self) -> bool {
        self.lm_head.is_some()
    }
}
