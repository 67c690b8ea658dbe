//! # ensi-nn
//!
//! Encrypted BitNet b1.58 layers (ENSI, He et al. 2025, arXiv 2509.09424): column-wise and packed
//! activation layouts, ternary linear layers by additions only, RoPE, sigmoid attention, RMSNorm
//! with fused bootstrapping, and the level planner.
//!
//! This crate is being built; see the project's issue tracker. It compiles as a `no_std` crate on
//! top of [`ensi_ckks`] and [`ensi_bitnet`].
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod activation;
pub mod attention;
pub mod column;
pub mod decoder;
pub mod norm;

pub use ensi_bitnet;
pub use ensi_ckks;
