//! Benchmarks harness.
