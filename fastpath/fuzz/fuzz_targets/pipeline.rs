//! Arbitrary frames and sealed inner packets through `Pipeline::process` (see
//! `hostile_support::fuzz::pipeline` for the input format and the invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fastpath_fuzz::support::fuzz::pipeline(data));
