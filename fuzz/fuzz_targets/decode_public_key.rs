//! Feeds arbitrary bytes to `PublicKey::from_bytes` (seed re-expansion) for a fixed small context:
//! it must return an error or a value that re-encodes to exactly the input, and never panic (see
//! `common`).
#![no_main]

#[macro_use]
mod common;

round_trip_target!(ensi_ckks::PublicKey);
