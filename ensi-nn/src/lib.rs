//! # ensi-nn
//!
//! Encrypted BitNet b1.58 layers (ENSI, He et al. 2025, arXiv 2509.09424) in two layouts: the
//! packed column-block layout (one ciphertext per activation, streamed BSGS projections with
//! every constant folded) and ENSI's column layout (ternary projections by additions only);
//! RoPE, sigmoid attention, RMSNorm with fused bootstrapping, the gated FFN, calibration and the
//! level plan of a layer; and a layer whose ternary projections are integer polynomials in
//! coefficient encoding, fused with their bootstraps (`coeff_kernel`, `coeff_layer`).
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
pub mod coeff_kernel;
pub mod coeff_layer;
pub mod column;
pub mod decoder;
pub mod norm;
pub mod plan;

pub use ensi_bitnet;
pub use ensi_ckks;
