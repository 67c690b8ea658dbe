//! Feeds arbitrary bytes to the decoders of the bootstrapping keys (dense-to-sparse over
//! `q_0 p_0`, sparse-to-dense over `Q ∪ P`) through `EvaluationKey::from_bytes`, whose tag
//! dispatch reaches both: an error or an exact round trip, never a panic (see `common`). The
//! seed corpus holds one valid key of each kind.
#![no_main]

#[macro_use]
mod common;

round_trip_target!(ensi_ckks::EvaluationKey);
