#!/usr/bin/env bash
# Builds the gateway's container image without pulling anything: FROM scratch, holding the
# dataplane binary, the shared libraries it links (as ldd lists them, at the same paths) and the
# dynamic loader. Also builds the HTTP server of the article's layout (the nginx container's
# stand-in): FROM scratch with Debian's statically linked busybox (package busybox-static),
# serving /www with `busybox httpd`.
#
#   bash container/build-image.sh                         release build, tags localhost/dataplane:latest
#   bash container/build-image.sh --profile debug         the debug binary (what the test uses)
#   bash container/build-image.sh --binary PATH           an existing binary, no cargo build
#   bash container/build-image.sh --tag T --httpd-tag T   other tags
#
# Needs podman (apt-get install podman runc busybox-static). Prints the two tags on stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

profile=release
binary=""
tag=localhost/dataplane:latest
httpd_tag=localhost/dataplane-httpd:latest
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --binary) binary="$2"; shift 2 ;;
        --tag) tag="$2"; shift 2 ;;
        --httpd-tag) httpd_tag="$2"; shift 2 ;;
        *) echo "usage: build-image.sh [--profile release|debug] [--binary PATH] [--tag T] [--httpd-tag T]" >&2; exit 2 ;;
    esac
done

if [ -z "$binary" ]; then
    target="${CARGO_TARGET_DIR:-$root/target}"
    case "$profile" in
        debug|dev) profile_dir=debug; cargo_profile=dev ;;
        *) profile_dir="$profile"; cargo_profile="$profile" ;;
    esac
    echo "build-image: cargo build --profile $cargo_profile -p dataplane --bin dataplane" >&2
    cargo build --profile "$cargo_profile" -p dataplane --bin dataplane >&2
    binary="$target/$profile_dir/dataplane"
fi
[ -x "$binary" ] || { echo "build-image: $binary is not an executable" >&2; exit 1; }

ctx="$(mktemp -d /tmp/dataplane-image.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT

# The gateway: the binary, each library ldd resolves and the loader, at their own paths (the
# loader's path is compiled into the binary; the libraries are found in the default paths).
mkdir -p "$ctx/gw/rootfs/usr/bin" "$ctx/gw/rootfs/run/dataplane" "$ctx/gw/rootfs/run/wireguard" \
         "$ctx/gw/rootfs/tmp" "$ctx/gw/rootfs/config"
# /var/run/wireguard is where `wg` and the UAPI socket meet: /var/run -> /run, as on the host.
mkdir -p "$ctx/gw/rootfs/var" && ln -s ../run "$ctx/gw/rootfs/var/run"
install -m 0755 "$binary" "$ctx/gw/rootfs/usr/bin/dataplane"
# Without its debug symbols, as the .deb ships it (a debug build: 100 MB less to copy).
if command -v strip >/dev/null; then strip --strip-debug "$ctx/gw/rootfs/usr/bin/dataplane"; fi
for lib in $(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    real="$(readlink -f "$lib")"
    dest="$ctx/gw/rootfs$lib"
    mkdir -p "$(dirname "$dest")"
    cp "$real" "$dest"
    # Keep the library at the path ldd named and, when that was a symlink, at its own path too.
    [ "$real" = "$lib" ] || { mkdir -p "$(dirname "$ctx/gw/rootfs$real")"; cp "$real" "$ctx/gw/rootfs$real"; }
    echo "build-image: + $lib" >&2
done
cp container/Containerfile "$ctx/gw/Containerfile"
podman build --quiet --pull=never -t "$tag" -f "$ctx/gw/Containerfile" "$ctx/gw" >&2

# The HTTP server: one static binary.
busybox="$(command -v busybox || true)"
if [ -z "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
    echo "build-image: a static busybox is needed for the HTTP server image (apt-get install busybox-static)" >&2
    exit 1
fi
mkdir -p "$ctx/httpd/rootfs/bin" "$ctx/httpd/rootfs/www"
cp "$busybox" "$ctx/httpd/rootfs/bin/busybox"
cp container/Containerfile.httpd "$ctx/httpd/Containerfile"
podman build --quiet --pull=never -t "$httpd_tag" -f "$ctx/httpd/Containerfile" "$ctx/httpd" >&2

echo "$tag"
echo "$httpd_tag"
