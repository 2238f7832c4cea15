//! The fuzz targets' bodies over their committed seed corpus (`gwconf/fuzz/corpus/<target>`),
//! as a plain test: the targets stay compiled and their seeds keep passing on a stable
//! toolchain, without cargo-fuzz.

#[path = "../fuzz/src/lib.rs"]
mod fuzz_bodies;

use std::path::PathBuf;

use gwconf::Format;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("seed readable");
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

#[test]
fn config_gw_toml_seeds() {
    for (path, bytes) in seeds("config_gw_toml") {
        eprintln!("{}", path.display());
        fuzz_bodies::config(&bytes, Format::GwToml);
    }
}

#[test]
fn config_wg_quick_seeds() {
    for (path, bytes) in seeds("config_wg_quick") {
        eprintln!("{}", path.display());
        fuzz_bodies::config(&bytes, Format::WgQuick);
    }
}
