//! Encoding of complex and real vectors into CKKS plaintext polynomials.

mod fft;

pub use fft::SpecialFft;
