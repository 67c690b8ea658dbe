//! # ensi-math
//!
//! The arithmetic foundation of the ensi CKKS stack: word-size modular arithmetic (Barrett and
//! Shoup), NTT-friendly primes, negacyclic NTTs with run-time selected SIMD backends, RNS bases
//! with exact CRT and fast basis extension, typed RNS polynomials and constant-time samplers.
//!
//! `#![no_std]` with `alloc`; the `std` feature adds conveniences and the `parallel` feature
//! spreads work over RNS limbs with rayon.
#![no_std]
#![doc = ""]
#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod error;
pub mod modulus;
pub mod ntt;
pub mod oracle;
pub mod pointwise;
pub mod poly;
pub mod prime;
pub mod rns;
pub mod sample;

pub use error::MathError;
pub use modulus::Modulus;
pub use ntt::{Backend, NttPlan};
pub use poly::{Coeff, Ntt, NttAutomorphism, Representation, RnsContext, RnsPoly};
pub use prime::{generate_ntt_primes, generate_prime_chain, is_prime_vartime, primitive_root_2n};
pub use rns::{BasisConverter, KeySwitchBasis, RnsBasis, Rounding, par};
