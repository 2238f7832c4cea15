#!/usr/bin/env bash
# Builds the dataplane .deb with dpkg-deb alone (no cargo-deb: it is not packaged by Debian and
# building it from crates.io costs minutes of compile on this 2-core machine for what a few
# lines of shell do here).
#
#   bash packaging/build-deb.sh                       release build, .deb in <target>/deb/
#   bash packaging/build-deb.sh --profile debug       the debug binaries (what tests build anyway)
#   bash packaging/build-deb.sh --out DIR             write the .deb into DIR
#
# Prints the path of the .deb on stdout (and nothing else there). The package: /usr/bin/dataplane
# (stripped), the systemd unit dataplane@.service, its service user (sysusers.d), man pages and
# bash/zsh/fish completions generated from the clap definitions (dataplane-gen-docs), the
# example configs of configs/, README.md and SECURITY.md, and the Grafana dashboard with its
# provisioning files (ops/grafana/ -> /usr/share/dataplane/grafana/). Depends: from
# dpkg-shlibdeps.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

profile=release
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: build-deb.sh [--profile release|debug] [--out DIR]" >&2; exit 2 ;;
    esac
done

target="${CARGO_TARGET_DIR:-$root/target}"
case "$profile" in
    debug|dev) profile_dir=debug; cargo_profile=dev ;;
    *) profile_dir="$profile"; cargo_profile="$profile" ;;
esac
out="${out:-$target/deb}"

echo "build-deb: cargo build --profile $cargo_profile -p dataplane (dataplane, dataplane-gen-docs)" >&2
cargo build --profile "$cargo_profile" -p dataplane --bin dataplane --bin dataplane-gen-docs >&2
bin="$target/$profile_dir/dataplane"
gen="$target/$profile_dir/dataplane-gen-docs"

version="$("$bin" --version | awk '{print $2}')"
arch="$(dpkg --print-architecture)"
[ -n "$version" ] || { echo "build-deb: no version from $bin --version" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pkg="$work/pkg"
doc="$pkg/usr/share/doc/dataplane"

install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/usr/lib/sysusers.d" \
    "$pkg/usr/share/man/man1" "$pkg/usr/share/bash-completion/completions" \
    "$pkg/usr/share/zsh/vendor-completions" "$pkg/usr/share/fish/vendor_completions.d" \
    "$doc/examples" "$pkg/etc/dataplane" "$pkg/usr/share/dataplane/grafana/provisioning/dashboards" \
    "$pkg/usr/share/dataplane/grafana/provisioning/datasources"

install -m 0755 "$bin" "$pkg/usr/bin/dataplane"
strip --strip-unneeded "$pkg/usr/bin/dataplane"
install -m 0644 packaging/dataplane@.service "$pkg/lib/systemd/system/dataplane@.service"
install -m 0644 packaging/sysusers.conf "$pkg/usr/lib/sysusers.d/dataplane.conf"

"$gen" "$work/gen" >&2
for page in "$work"/gen/man/*.1; do
    gzip -9n < "$page" > "$pkg/usr/share/man/man1/$(basename "$page").gz"
done
install -m 0644 "$work/gen/completions/dataplane.bash" "$pkg/usr/share/bash-completion/completions/dataplane"
install -m 0644 "$work/gen/completions/_dataplane" "$pkg/usr/share/zsh/vendor-completions/_dataplane"
install -m 0644 "$work/gen/completions/dataplane.fish" "$pkg/usr/share/fish/vendor_completions.d/dataplane.fish"

install -m 0644 configs/* "$doc/examples/"
install -m 0644 README.md SECURITY.md packaging/debian/copyright "$doc/"
# The dashboard where the provisioning file's provider looks for it; the two provisioning
# files are for the operator to copy to /etc/grafana/provisioning/ (README, "Metrics").
grafana="$pkg/usr/share/dataplane/grafana"
install -m 0644 ops/grafana/dataplane.json "$grafana/"
for kind in dashboards datasources; do
    install -m 0644 "ops/grafana/provisioning/$kind/dataplane.yaml" "$grafana/provisioning/$kind/"
done

# Shared-library dependencies as Debian computes them (dpkg-shlibdeps wants a debian/control).
mkdir -p "$work/src/debian"
printf 'Source: dataplane\n\nPackage: dataplane\nArchitecture: any\n' > "$work/src/debian/control"
depends="$(cd "$work/src" && dpkg-shlibdeps -O -e"$pkg/usr/bin/dataplane" 2>/dev/null \
    | sed -n 's/^shlibs:Depends=//p')"
[ -n "$depends" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$pkg/DEBIAN/"
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: dataplane
Version: $version
Architecture: $arch
Maintainer: ${DEBFULLNAME:-wgxdp maintainers} <${DEBEMAIL:-maintainers@localhost}>
Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
Depends: $depends
Recommends: wireguard-tools
Section: net
Priority: optional
Description: WireGuard gateway on AF_XDP with built-in source NAT
 dataplane attaches an XDP program to the NIC and moves WireGuard traffic through
 AF_XDP sockets: worker threads decrypt, check the inner source against the peer's
 AllowedIPs, source-NAT, route and transmit, and do the reverse for replies, without
 the kernel's network stack in the path. A kernel wg0 device keeps wg show, ping
 and tcpdump -i wg0 working. One systemd instance per config:
 dataplane@NAME.service runs /etc/dataplane/NAME.toml.
CONTROL

mkdir -p "$out"
deb="$out/dataplane_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >&2
echo "$deb"
