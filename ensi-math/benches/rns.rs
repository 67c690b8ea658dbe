//! RNS benchmarks (being written).
fn main() {}
