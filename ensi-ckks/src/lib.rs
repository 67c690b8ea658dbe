//! # ensi-ckks
//!
//! Full-RNS CKKS (Cheon–Kim–Kim–Song 2017, with the RNS variant of Cheon–Han–Kim–Kim–Song 2018)
//! for the ensi secure-inference stack: checked parameter sets, the canonical-embedding encoder,
//! keys with zeroized, constant-time secrets, encryption, decryption and an evaluator that never
//! needs the secret key.
//!
//! Bootstrapping, polynomial evaluation and linear transforms are being built (see the issue
//! tracker). The crate is `no_std` on top of [`ensi_math`].
#![no_std]
#![doc = ""]
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod bootstrap;
pub mod ciphertext;
pub mod client;
pub mod coeff;
pub mod context;
pub mod encoding;
pub mod encryption;
pub mod error;
pub mod evalkeys;
pub mod evaluator;
pub mod ids;
pub mod keys;
pub mod keyswitch;
pub mod lintrans;
pub mod params;
pub mod plaintext;
pub mod polynomial;
pub mod precision;
pub mod rlwe;
pub mod security;
pub mod serialize;

pub use bootstrap::{
    BootstrapKeys, BootstrapOptions, BootstrapParametersLiteral, Bootstrapper, DenseToSparseKey,
    SparseToDenseKey, StageTimes, generate_bootstrap_keys, generate_encapsulation_keys,
};
pub use ciphertext::Ciphertext;
pub use context::CkksContext;
pub use encryption::NoiseFlooding;
pub use error::CkksError;
pub use evalkeys::{
    CompactGalois, EvaluationKey, EvaluationKeySet, GaloisKey, KeyRequest, KeySink,
    RelinearizationKey, generate_evaluation_keys,
};
pub use evaluator::{Evaluator, OpCount};
pub use keys::{PublicKey, SecretKey};
pub use keyswitch::{Decomposition, KeySpan, SwitchingKey};
pub use lintrans::{
    BabySteps, EncodedLinearTransform, LinearTransform, ReplicatedMatrix, TransformShape,
};
pub use params::{Parameters, ParametersLiteral, ParamsId, SecretDistribution, Security};
pub use plaintext::Plaintext;
pub use polynomial::{ChebyshevPoly, PolyEvalStats};
pub use precision::PrecisionStats;
pub use security::{SecretReport, SecretRole, SecurityReport};
pub use serialize::{DecodeOptions, FormatError};

pub use ensi_math;
