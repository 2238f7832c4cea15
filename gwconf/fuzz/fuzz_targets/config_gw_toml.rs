//! Any text through the gw.toml loader; what loads must render and load back the same.
#![no_main]

use gwconf::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gwconf_fuzz::config(data, Format::GwToml));
