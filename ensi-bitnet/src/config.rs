//! Model configuration, read from a checkpoint's `config.json`.
//!
//! Two families of BitNet b1.58 checkpoints are covered:
//!
//! * [`Family::Bitnet`]: microsoft/bitnet-b1.58-2B-4T (`model_type: "bitnet"`): hidden 2560,
//!   intermediate 6912, 30 layers, 20 heads, 5 KV heads (GQA), ReLU^2 gated FFN (`"relu2"`),
//!   sub-norms `self_attn.attn_sub_norm` (before `o_proj`) and `mlp.ffn_sub_norm` (before
//!   `down_proj`), RoPE theta 500000, tied embeddings, no biases ("BitNet b1.58 2B4T Technical
//!   Report", 2025, section 2).
//! * [`Family::Llama1Bit`]: 1bitLLM/bitnet_b1_58-* (`model_type: "llama"`), e.g. `-large`:
//!   hidden 1536, intermediate 4096, 24 layers, 16 heads, gated SiLU FFN, sub-norms
//!   `self_attn.inner_attn_ln` and `mlp.ffn_layernorm`, RoPE theta 10000, latent fp16 weights
//!   ternarized at run time (the reproduction of Ma et al., 2024).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::ternary::ScaleConvention;

/// Which checkpoint family (tensor names and defaults) a model follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// microsoft/bitnet-b1.58-2B-4T and its transformers `BitNet` architecture.
    Bitnet,
    /// 1bitLLM/bitnet_b1_58-{large,xl,3B}: Llama with BitLinear layers and extra sub-norms.
    Llama1Bit,
}

impl Family {
    /// The family's name as the CLI and JSON print it.
    pub fn name(self) -> &'static str {
        match self {
            Family::Bitnet => "bitnet",
            Family::Llama1Bit => "llama-1bit",
        }
    }

    /// Tensor-name stem (after `model.layers.{i}.`) of the RMSNorm before `o_proj`.
    pub fn attn_sub_norm(self) -> &'static str {
        match self {
            Family::Bitnet => "self_attn.attn_sub_norm",
            Family::Llama1Bit => "self_attn.inner_attn_ln",
        }
    }

    /// Tensor-name stem (after `model.layers.{i}.`) of the RMSNorm before `down_proj`.
    pub fn ffn_sub_norm(self) -> &'static str {
        match self {
            Family::Bitnet => "mlp.ffn_sub_norm",
            Family::Llama1Bit => "mlp.ffn_layernorm",
        }
    }

    /// The `model_type` config key of the family.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Bitnet => "bitnet",
            Family::Llama1Bit => "llama",
        }
    }
}

/// The gate activation of the FFN (`act(gate) * up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `relu(x)^2` (`hidden_act: "relu2"`, bitnet-b1.58-2B-4T).
    ReluSquared,
    /// `x * sigmoid(x)` (`hidden_act: "silu"`, 1bitLLM).
    Silu,
}

impl Activation {
    /// The `hidden_act` string of the activation.
    pub fn name(self) -> &'static str {
        match self {
            Activation::ReluSquared => "relu2",
            Activation::Silu => "silu",
        }
    }
}

/// Choices a loader cannot read from the checkpoint itself, or that override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Force the family; `None` reads it from `model_type`.
    pub family: Option<Family>,
    /// Force how `weight_scale` applies; `None` follows `quantization_config.linear_class`
    /// (see [`ModelConfig::weight_scale`]).
    pub weight_scale: Option<ScaleConvention>,
    /// Ternarize latent (float) weights by absmean on load (default `true`). With `false`,
    /// latent checkpoints keep their full-precision weights, to measure ternarization's effect;
    /// packed checkpoints are ternary either way.
    pub weight_quant: bool,
    /// Reject tensors the model does not use (default `true`): a misnamed tensor is then
    /// reported by its name, not only as the tensor missing in its place.
    pub strict: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            family: None,
            weight_scale: None,
            weight_quant: true,
            strict: true,
        }
    }
}

/// A checked model configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Checkpoint family (tensor names of the sub-norms).
    pub family: Family,
    /// Vocabulary size (`vocab_size`).
    pub vocab_size: usize,
    /// Model width (`hidden_size`).
    pub hidden_size: usize,
    /// FFN width (`intermediate_size`).
    pub intermediate_size: usize,
    /// Number of decoder layers (`num_hidden_layers`).
    pub num_hidden_layers: usize,
    /// Number of query heads (`num_attention_heads`).
    pub num_attention_heads: usize,
    /// Number of key/value heads (`num_key_value_heads`; fewer than query heads = GQA).
    pub num_key_value_heads: usize,
    /// Dimension of one head (`head_dim`, default `hidden_size / num_attention_heads`).
    pub head_dim: usize,
    /// RMSNorm epsilon (`rms_norm_eps`).
    pub rms_norm_eps: f64,
    /// RoPE base (`rope_theta`).
    pub rope_theta: f64,
    /// Longest sequence (`max_position_embeddings`).
    pub max_position_embeddings: usize,
    /// FFN gate activation (`hidden_act`).
    pub hidden_act: Activation,
    /// Whether the LM head is the embedding matrix (`tie_word_embeddings`).
    pub tie_word_embeddings: bool,
    /// How a stored `weight_scale` applies to packed ternary weights.
    ///
    /// Read from `quantization_config.linear_class` as transformers does: `"bitlinear"` means
    /// [`ScaleConvention::Divide`] (its `BitLinear` computes `y / (input_scale * weight_scale)`)
    /// and `"autobitlinear"` means [`ScaleConvention::Multiply`] (its `AutoBitLinear` computes
    /// `y * weight_scale`). **Default when absent: `Divide`**, because `BitLinear` is the default
    /// class of transformers' `BitNetQuantConfig` and the reference quantizer's scale is
    /// `1 / mean|W|`, which a dequantization divides by. Public sources do not settle which
    /// the released 2B-4T weights were exported with; [`LoadOptions::weight_scale`] overrides.
    pub weight_scale: ScaleConvention,
}

fn obj_get<'a>(obj: &'a Map<String, Value>, key: &'static str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn get_usize(obj: &Map<String, Value>, key: &'static str, default: Option<usize>) -> Result<usize> {
    match obj_get(obj, key) {
        None => default.ok_or(Error::MissingConfigKey { key }),
        Some(v) => v
            .as_u64()
            .and_then(|u| usize::try_from(u).ok())
            .ok_or_else(|| Error::InvalidConfig {
                key,
                reason: format!("expected a non-negative integer, found {v}"),
            }),
    }
}

fn get_f64(obj: &Map<String, Value>, key: &'static str, default: f64) -> Result<f64> {
    match obj_get(obj, key) {
        None => Ok(default),
        Some(v) => v.as_f64().ok_or_else(|| Error::InvalidConfig {
            key,
            reason: format!("expected a number, found {v}"),
        }),
    }
}

fn get_str<'a>(obj: &'a Map<String, Value>, key: &'static str) -> Result<Option<&'a str>> {
    match obj_get(obj, key) {
        None => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or_else(|| Error::InvalidConfig {
            key,
            reason: format!("expected a string, found {v}"),
        }),
    }
}

fn get_bool(obj: &Map<String, Value>, key: &'static str) -> Result<Option<bool>> {
    match obj_get(obj, key) {
        None => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or_else(|| Error::InvalidConfig {
            key,
            reason: format!("expected a boolean, found {v}"),
        }),
    }
}

impl ModelConfig {
    /// Parses and checks a `config.json`.
    ///
    /// Required keys: `hidden_size`, `intermediate_size`, `num_hidden_layers`,
    /// `num_attention_heads`, `vocab_size`, and `model_type` unless `options.family` is given.
    /// Defaults of the family's transformers config class otherwise apply:
    /// `num_key_value_heads` = heads, `rms_norm_eps` 1e-5 (bitnet) / 1e-6 (llama), `rope_theta`
    /// 500000 / 10000, `hidden_act` relu2 / silu, `max_position_embeddings` 2048,
    /// `tie_word_embeddings` true (bitnet) / false (llama). Biases (`attention_bias`,
    /// `mlp_bias`) and `rope_scaling` are not supported and rejected.
    pub fn from_json(text: &str, options: &LoadOptions) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| Error::InvalidConfig {
            key: "config.json",
            reason: e.to_string(),
        })?;
        let obj = value.as_object().ok_or_else(|| Error::InvalidConfig {
            key: "config.json",
            reason: "not a JSON object".into(),
        })?;
        let family = match options.family {
            Some(f) => f,
            None => match get_str(obj, "model_type")? {
                Some("bitnet") => Family::Bitnet,
                Some("llama") => Family::Llama1Bit,
                Some(other) => {
                    return Err(Error::InvalidConfig {
                        key: "model_type",
                        reason: format!(
                            "unknown model type `{other}` (expected \"bitnet\" or \"llama\")"
                        ),
                    });
                }
                None => return Err(Error::MissingConfigKey { key: "model_type" }),
            },
        };
        let bitnet = family == Family::Bitnet;
        let hidden_size = get_usize(obj, "hidden_size", None)?;
        let num_attention_heads = get_usize(obj, "num_attention_heads", None)?;
        let hidden_act = match get_str(obj, "hidden_act")? {
            None if bitnet => Activation::ReluSquared,
            None => Activation::Silu,
            Some("relu2") => Activation::ReluSquared,
            Some("silu") | Some("swish") => Activation::Silu,
            Some(other) => {
                return Err(Error::InvalidConfig {
                    key: "hidden_act",
                    reason: format!(
                        "unsupported activation `{other}` (expected \"relu2\" or \"silu\")"
                    ),
                });
            }
        };
        for key in ["attention_bias", "mlp_bias"] {
            if get_bool(obj, key)? == Some(true) {
                return Err(Error::InvalidConfig {
                    key,
                    reason: "biases are not part of BitNet b1.58".into(),
                });
            }
        }
        if obj_get(obj, "rope_scaling").is_some() {
            return Err(Error::InvalidConfig {
                key: "rope_scaling",
                reason: "RoPE scaling is not supported".into(),
            });
        }
        let weight_scale = match options.weight_scale {
            Some(c) => c,
            None => {
                let linear_class = match obj_get(obj, "quantization_config") {
                    None => None,
                    Some(Value::Object(q)) => get_str(q, "linear_class")?,
                    Some(other) => {
                        return Err(Error::InvalidConfig {
                            key: "quantization_config",
                            reason: format!("expected an object, found {other}"),
                        });
                    }
                };
                match linear_class {
                    None | Some("bitlinear") => ScaleConvention::Divide,
                    Some("autobitlinear") => ScaleConvention::Multiply,
                    Some(other) => {
                        return Err(Error::InvalidConfig {
                            key: "quantization_config",
                            reason: format!("unknown linear_class `{other}`"),
                        });
                    }
                }
            }
        };
        let head_default = if num_attention_heads > 0 && hidden_size % num_attention_heads == 0 {
            Some(hidden_size / num_attention_heads)
        } else {
            None
        };
        let config = ModelConfig {
            family,
            vocab_size: get_usize(obj, "vocab_size", None)?,
            hidden_size,
            intermediate_size: get_usize(obj, "intermediate_size", None)?,
            num_hidden_layers: get_usize(obj, "num_hidden_layers", None)?,
            num_attention_heads,
            num_key_value_heads: get_usize(obj, "num_key_value_heads", Some(num_attention_heads))?,
            head_dim: get_usize(obj, "head_dim", head_default).map_err(|_| {
                Error::InvalidConfig {
                    key: "head_dim",
                    reason: "absent, and hidden_size is not a multiple of num_attention_heads"
                        .into(),
                }
            })?,
            rms_norm_eps: get_f64(obj, "rms_norm_eps", if bitnet { 1e-5 } else { 1e-6 })?,
            rope_theta: get_f64(obj, "rope_theta", if bitnet { 500_000.0 } else { 10_000.0 })?,
            max_position_embeddings: get_usize(obj, "max_position_embeddings", Some(2048))?,
            hidden_act,
            tie_word_embeddings: get_bool(obj, "tie_word_embeddings")?.unwrap_or(bitnet),
            weight_scale,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the dimensions are consistent: all non-zero, heads a multiple of KV heads, an
    /// even head dimension (RoPE), a finite positive epsilon and RoPE base, a vocabulary that
    /// token ids (`u32`) can address, and sizes whose products do not overflow.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, reason: &str| {
            Err(Error::InvalidConfig {
                key,
                reason: reason.into(),
            })
        };
        for (key, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                return bad(key, "must be positive");
            }
            if v > (1 << 31) {
                return bad(key, "unreasonably large");
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return bad("num_key_value_heads", "must divide num_attention_heads");
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad("head_dim", "must be even for RoPE");
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return bad("rms_norm_eps", "must be finite and positive");
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return bad("rope_theta", "must be finite and positive");
        }
        for (key, a, b) in [
            ("vocab_size", self.vocab_size, self.hidden_size),
            (
                "intermediate_size",
                self.intermediate_size,
                self.hidden_size,
            ),
            (
                "num_attention_heads",
                self.num_attention_heads,
                self.head_dim,
            ),
        ] {
            if a.checked_mul(b).and_then(|n| n.checked_mul(4)).is_none() {
                return bad(key, "tensor size overflows");
            }
        }
        Ok(())
    }

    /// Width of the query projection: `num_attention_heads * head_dim`.
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// Width of the key and value projections: `num_key_value_heads * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// Writes the configuration as a `config.json` in the family's real layout (keys, the
    /// `architectures` list and a `quantization_config` recording the scale convention).
    pub fn to_json(&self) -> String {
        let mut m = Map::new();
        let arch = match self.family {
            Family::Bitnet => "BitNetForCausalLM",
            Family::Llama1Bit => "BitnetForCausalLM",
        };
        m.insert(
            "architectures".into(),
            Value::Array(vec![Value::from(arch)]),
        );
        m.insert("model_type".into(), Value::from(self.family.model_type()));
        m.insert("vocab_size".into(), Value::from(self.vocab_size));
        m.insert("hidden_size".into(), Value::from(self.hidden_size));
        m.insert(
            "intermediate_size".into(),
            Value::from(self.intermediate_size),
        );
        m.insert(
            "num_hidden_layers".into(),
            Value::from(self.num_hidden_layers),
        );
        m.insert(
            "num_attention_heads".into(),
            Value::from(self.num_attention_heads),
        );
        m.insert(
            "num_key_value_heads".into(),
            Value::from(self.num_key_value_heads),
        );
        m.insert("head_dim".into(), Value::from(self.head_dim));
        m.insert("rms_norm_eps".into(), Value::from(self.rms_norm_eps));
        m.insert("rope_theta".into(), Value::from(self.rope_theta));
        m.insert(
            "max_position_embeddings".into(),
            Value::from(self.max_position_embeddings),
        );
        m.insert("hidden_act".into(), Value::from(self.hidden_act.name()));
        m.insert(
            "tie_word_embeddings".into(),
            Value::from(self.tie_word_embeddings),
        );
        m.insert("attention_bias".into(), Value::from(false));
        let mut q = Map::new();
        q.insert("quant_method".into(), Value::from("bitnet"));
        let class = match self.weight_scale {
            ScaleConvention::Divide => "bitlinear",
            ScaleConvention::Multiply => "autobitlinear",
        };
        q.insert("linear_class".into(), Value::from(class));
        q.insert("quantization_mode".into(), Value::from("offline"));
        m.insert("quantization_config".into(), Value::Object(q));
        Value::Object(m).to_string()
    }
}
