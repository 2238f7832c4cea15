//! Any text as a UAPI `set=1` request body: parse, apply, `get=1`, and back (see
//! `hostile_support::uapi_set`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| slowpath_fuzz::support::uapi_set(data));
