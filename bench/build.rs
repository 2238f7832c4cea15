//! Compiles the load generator's XDP program (src/xsk_port/redirect.bpf.c) to a BPF object in
//! OUT_DIR, which src/xsk_port.rs embeds with `include_bytes!`. Needs `clang` with the BPF
//! target and the kernel UAPI headers (linux-libc-dev), as the dataplane crate's build does;
//! set `CLANG` to use another compiler binary.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "src/xsk_port/redirect.bpf.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=CLANG");

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out.join("generator_redirect.bpf.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    // The UAPI headers include <asm/types.h>, which Debian keeps under the multiarch directory.
    let multiarch = match env::var("CARGO_CFG_TARGET_ARCH")
        .unwrap_or_default()
        .as_str()
    {
        "x86_64" => "x86_64-linux-gnu".to_string(),
        "aarch64" => "aarch64-linux-gnu".to_string(),
        other => other.to_string(),
    };
    let status = Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"])
        .arg(format!("-I/usr/include/{multiarch}"))
        .arg("-c")
        .arg(SOURCE)
        .arg("-o")
        .arg(&object)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run `{clang}` to build the generator's XDP program ({e}); install clang (apt-get install clang) or set CLANG")
        });
    if !status.success() {
        panic!(
            "`{clang} -target bpf` failed on {SOURCE} ({status}); see the compiler output above"
        );
    }
}
