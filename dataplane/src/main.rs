//! The `dataplane` binary.
fn main() {}
