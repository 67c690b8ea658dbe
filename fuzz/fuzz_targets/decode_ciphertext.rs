//! Feeds arbitrary bytes to `Ciphertext::from_bytes` (full and seeded forms) for a fixed small
//! context: it must return an error or a value that re-encodes to exactly the input, and never
//! panic (see `common`).
#![no_main]

#[macro_use]
mod common;

round_trip_target!(ensi_ckks::Ciphertext);
