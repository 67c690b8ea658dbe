//! Feeds arbitrary bytes to `CiphertextBundle::from_bytes` (the files `ensi infer` and
//! `ensi decrypt` read) for a fixed small context: it must return an error or a value that
//! re-encodes to exactly the input, and never panic (see `common`).
#![no_main]

#[macro_use]
mod common;

round_trip_target!(ensi_ckks::serialize::CiphertextBundle);
