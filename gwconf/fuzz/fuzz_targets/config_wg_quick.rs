//! Any text through the wg-quick (wg0.conf) importer; what loads must render to gw.toml and
//! load back the same.
#![no_main]

use gwconf::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gwconf_fuzz::config(data, Format::WgQuick));
