//! # ensi-nn
//!
//! Encrypted BitNet b1.58 layers (ENSI, He et al. 2025, arXiv 2509.09424) in the column layout:
//! ternary linear layers by additions only, RoPE, sigmoid attention, RMSNorm with bootstrapped
//! statistics, the gated FFN, calibration and the level plan of a layer.
//!
//! A `no_std` crate on top of [`ensi_ckks`] and [`ensi_bitnet`].
#![no_std]
#![doc = ""]
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod activation;
pub mod attention;
pub mod block;
pub mod block_layer;
pub mod column;
pub mod decoder;
pub mod norm;

pub use ensi_bitnet;
pub use ensi_ckks;
