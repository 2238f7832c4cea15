//! The bodies of the `gwconf/fuzz` targets. They live here so that the same code runs under
//! libFuzzer (`cargo +nightly fuzz run <target>` in gwconf/fuzz) and, over the committed seed
//! corpus, as a plain test (`gwconf/tests/fuzz_corpus.rs`) on a stable toolchain.

use std::path::Path;

use gwconf::{load_str, to_gw_toml, Format, LoadOptions};

/// The config targets: any text through the loader; what loads must render to gw.toml and load
/// again to the same configuration.
pub fn config(data: &[u8], format: Format) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `private_key_file` reads a file; device files are not configuration (see SECURITY.md).
    if text.contains("/dev/") || text.contains("/proc/") || text.contains("/sys/") {
        return;
    }
    let opts = LoadOptions::default();
    let base = Path::new("/nonexistent/fuzz");
    let Ok(loaded) = load_str(text, "fuzz", base, format, "wg0", &opts) else {
        return;
    };
    let rendered = to_gw_toml(&loaded.config, &[]);
    match load_str(&rendered, "rendered", base, Format::GwToml, "wg0", &opts) {
        Ok(again) => assert_eq!(
            again.config, loaded.config,
            "round trip changed\n{rendered}"
        ),
        Err(e) => panic!("a loaded config renders to gw.toml that does not load: {e}\n{rendered}"),
    }
}
