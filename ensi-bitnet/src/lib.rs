//! # ensi-bitnet
//!
//! BitNet b1.58 models in the clear: ternary tensors and their packings, absmean/absmax
//! quantization, model configuration, checkpoint loaders (feature `std`), a deterministic tiny
//! embedded model and the plaintext reference forward pass that every encrypted result of the
//! ENSI pipeline is checked against.
//!
//! Sources:
//! * S. Ma et al., "The Era of 1-bit LLMs: All Large Language Models are in 1.58 Bits", 2024
//!   (arXiv 2402.17764): ternary weights by absmean, int8 activations by per-token absmax.
//! * S. Ma et al., "BitNet b1.58 2B4T Technical Report", 2025 (arXiv 2504.12285): the
//!   architecture of microsoft/bitnet-b1.58-2B-4T (ReLU^2, subln, RoPE, no biases).
//! * Z. He et al., "ENSI: Efficient Non-Interactive Secure Inference for Large Language Models",
//!   2025 (arXiv 2509.09424): sigmoid attention `sigmoid(QK^T / sqrt(d) - ln n)` instead of
//!   softmax, without retraining.
//!
//! ```
//! use ensi_bitnet::{embedded_model, AttentionKind, ForwardOptions};
//!
//! let model = embedded_model()?;
//! let options = ForwardOptions::new(AttentionKind::Sigmoid, false);
//! let trace = model.forward::<f64>(&[1, 2, 3], &options)?;
//! assert_eq!(trace.last_logits().len(), 256);
//! let _next = trace.next_token();
//! # Ok::<(), ensi_bitnet::Error>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod config;
pub mod embedded;
pub mod error;
pub mod float;
pub mod forward;
pub mod linear;
#[cfg(feature = "std")]
pub mod loader;
pub mod matrix;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod packing;
pub mod quant;
pub mod ternary;

pub use config::{Activation, Family, LoadOptions, ModelConfig};
pub use embedded::{EMBEDDED_SEED, embedded_config, embedded_model, random_model};
pub use error::{Error, Result};
pub use float::Float;
pub use forward::{
    ForwardOptions, LayerTrace, Trace, forward, generate_greedy, generate_greedy_cached,
};
pub use linear::{DenseMatrix, Linear};
#[cfg(feature = "std")]
pub use loader::{load_checkpoint, load_safetensors, parse_shard_index, save_checkpoint};
pub use matrix::Matrix;
pub use metrics::{LogitComparison, compare_logits};
pub use model::{Layer, Model};
pub use ops::{AttentionKind, apply_rope, argmax, attention_head, rms_norm, rope_angles, sigmoid};
pub use ternary::{ScaleConvention, TernaryMatrix, WeightScale, ternary_matvec};

/// The README's examples, compiled and run as doctests.
#[cfg(all(doctest, feature = "std"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
