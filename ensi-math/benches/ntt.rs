//! NTT benchmarks (being written).
fn main() {}
