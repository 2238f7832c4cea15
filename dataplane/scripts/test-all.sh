#!/usr/bin/env bash
# Runs every test: formatting, lints, unit and property tests, and the root integration tests
# (network namespaces, wireguard-go peers, AF_XDP). As root on a fresh Debian machine it first
# installs what it needs. Integration tests skip with a printed reason when not root.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash dataplane/scripts/install-deps.sh

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# bench's root test runs the dataplane binary; it builds it with this same command if needed,
# so building it here first keeps that test's time its own.
step "cargo build -p dataplane --bin dataplane"
cargo build -p dataplane --bin dataplane

step "cargo test (libraries, property tests, known-answer tests, bench's load generator)"
cargo test --workspace --exclude dataplane

# The dataplane's integration tests build namespaces and attach XDP programs; one at a time keeps
# them from competing for the 2 cores and makes a failure's log readable.
step "cargo test -p dataplane (integration tests, one at a time)"
cargo test -p dataplane -- --test-threads=1

# The .deb from the debug binaries just built (no release build: that costs ~10 min here; the
# packaging is the same): contents, dpkg install into a temporary root, the unit verified.
step "packaging/test-deb.sh (.deb contents, install into a temporary root, systemd-analyze verify)"
bash packaging/test-deb.sh

# The packaged unit under a real systemd (systemd-nspawn booting this machine's OS): the sandbox
# keeps AF_XDP, bpf and wg0 working, a wireguard-go client pings through it, reload, stop.
step "packaging/test-service-nspawn.sh (dataplane@gw under systemd, a wireguard-go client)"
bash packaging/test-service-nspawn.sh

# The container image (FROM scratch, from the debug binary built above) and compose.yaml under
# podman: the gateway with its four capabilities and seccomp.json, a wireguard-go client
# downloading 32 MiB from the HTTP server container through the published port.
step "container/test-podman.sh (image, compose.yaml under podman, a wireguard-go client)"
bash container/test-podman.sh

# The benchmarks (criterion and the bench crate) were type-checked by clippy --all-targets
# above; building them again in the release profile would double the build time of a CI run.
# Run them with `cargo bench` or `target/release/bench` (bench/README.md).
