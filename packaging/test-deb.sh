#!/usr/bin/env bash
# Tests the Debian package: builds it (packaging/build-deb.sh, debug profile by default: the
# binaries the test run already built; DEB_TEST_PROFILE=release for the release one), checks its
# control fields and contents, proves the content check refuses a package missing a file,
# installs it with dpkg into a temporary root, and there: runs the installed binary (--version,
# --help, check on every installed example config), checks the Grafana dashboard, finds the
# man page and the completions,
# checks the unit's capabilities against SECURITY.md's four, verifies the unit with
# `systemd-analyze verify` (any warning fails) and its exposure with `systemd-analyze security`,
# then removes the package. Exits non-zero on the first failure, naming it.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
ok() { echo "test-deb: ok: $*"; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

deb="$(bash packaging/build-deb.sh --profile "${DEB_TEST_PROFILE:-debug}" --out "$work/out")"
[ -f "$deb" ] || fail "build-deb.sh printed no .deb ($deb)"
ok "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

# --- control fields -------------------------------------------------------------------------
version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)"
[ "$(dpkg-deb -f "$deb" Package)" = dataplane ] || fail "Package is not dataplane"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "Version $(dpkg-deb -f "$deb" Version), Cargo.toml says $version"
[ "$(dpkg-deb -f "$deb" Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture"
dpkg-deb -f "$deb" Depends | grep -q 'libc6 (>=' || fail "Depends lacks libc6: $(dpkg-deb -f "$deb" Depends)"
ok "control: dataplane $version, Depends: $(dpkg-deb -f "$deb" Depends)"

# --- contents -------------------------------------------------------------------------------
# What the package must hold: the binary, the unit and its user, a man page for the command and
# each subcommand the binary lists, three completions, every example of configs/.
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/dataplane > "$work/dataplane.bin"
chmod +x "$work/dataplane.bin"
subcommands="$("$work/dataplane.bin" --help | sed -n '/^Commands:/,/^$/p' \
    | awk 'NR > 1 && NF { print $1 }' | grep -vx help)"
[ -n "$subcommands" ] || fail "the packaged binary's --help lists no subcommand"
required=(
    "-rwxr-xr-x root/root /usr/bin/dataplane"
    "-rw-r--r-- root/root /lib/systemd/system/dataplane@.service"
    "-rw-r--r-- root/root /usr/lib/sysusers.d/dataplane.conf"
    "-rw-r--r-- root/root /usr/share/man/man1/dataplane.1.gz"
    "-rw-r--r-- root/root /usr/share/man/man1/dataplane-peer-add.1.gz"
    "-rw-r--r-- root/root /usr/share/bash-completion/completions/dataplane"
    "-rw-r--r-- root/root /usr/share/zsh/vendor-completions/_dataplane"
    "-rw-r--r-- root/root /usr/share/fish/vendor_completions.d/dataplane.fish"
    "-rw-r--r-- root/root /usr/share/doc/dataplane/copyright"
    "-rw-r--r-- root/root /usr/share/dataplane/grafana/dataplane.json"
    "-rw-r--r-- root/root /usr/share/dataplane/grafana/provisioning/dashboards/dataplane.yaml"
    "-rw-r--r-- root/root /usr/share/dataplane/grafana/provisioning/datasources/dataplane.yaml"
    "drwxr-xr-x root/root /etc/dataplane/"
)
for sub in $subcommands; do
    required+=("-rw-r--r-- root/root /usr/share/man/man1/dataplane-$sub.1.gz")
done
for example in configs/*; do
    required+=("-rw-r--r-- root/root /usr/share/doc/dataplane/examples/$(basename "$example")")
done

# Prints what is missing from the package $1 and fails if anything is.
check_contents() {
    local listing missing=0
    listing="$(dpkg-deb -c "$1" | awk '{sub(/^\./, "", $6); print $1, $2, $6}')"
    for entry in "${required[@]}"; do
        if ! grep -qxF -- "$entry" <<<"$listing"; then
            echo "  missing from $(basename "$1"): $entry" >&2
            missing=1
        fi
    done
    return "$missing"
}
check_contents "$deb" || fail "package contents (above)"
ok "contents: ${#required[@]} required entries (man pages for: $(echo $subcommands))"

# The check must be able to fail: the same package without its unit is refused.
dpkg-deb -R "$deb" "$work/broken"
rm "$work/broken/lib/systemd/system/dataplane@.service"
dpkg-deb --root-owner-group --build "$work/broken" "$work/broken.deb" >/dev/null
if check_contents "$work/broken.deb" 2>/dev/null; then
    fail "the content check accepted a package without dataplane@.service"
fi
ok "contents: a package without the unit is refused"

# --- install into a temporary root ----------------------------------------------------------
root="$work/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
dpkg_root=(dpkg --root="$root" --force-script-chrootless --force-depends)
[ "$(id -u)" -eq 0 ] || dpkg_root+=(--force-not-root)
"${dpkg_root[@]}" -i "$deb" > "$work/dpkg-install.log" 2>&1 \
    || { cat "$work/dpkg-install.log" >&2; fail "dpkg -i into $root"; }
[ "$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}' dataplane)" = "install ok installed" ] \
    || fail "dpkg does not list dataplane as installed in the temporary root"
ok "installed with dpkg --root"

if command -v systemd-sysusers >/dev/null; then
    grep -q '^dataplane:x:[0-9]*:[0-9]*:.*:/nonexistent:/usr/sbin/nologin$' "$root/etc/passwd" \
        || fail "postinst created no dataplane system user in the root's /etc/passwd"
    ok "postinst: service user dataplane created (systemd-sysusers --root)"
else
    echo "test-deb: skip: systemd-sysusers missing, the service user is not checked" >&2
fi

bin="$root/usr/bin/dataplane"
[ "$("$bin" --version)" = "dataplane $version" ] || fail "installed --version says '$("$bin" --version)'"
"$bin" --help | grep -q '^Usage: dataplane' || fail "installed --help"
for example in "$root"/usr/share/doc/dataplane/examples/*; do
    "$bin" check --offline --config "$example" > "$work/check.out" 2>&1 \
        || { cat "$work/check.out" >&2; fail "dataplane check on the installed $(basename "$example")"; }
    grep -q ': OK: ' "$work/check.out" || fail "check printed no OK for $(basename "$example")"
done
ok "installed binary: --version, --help, check on every example config"

# The Grafana dashboard: the repository's file, valid JSON, where the shipped provider looks.
grafana="$root/usr/share/dataplane/grafana"
cmp -s "$grafana/dataplane.json" ops/grafana/dataplane.json || fail "the installed dashboard differs from ops/grafana/dataplane.json"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["panels"], "no panels"' \
    "$grafana/dataplane.json" || fail "the installed dashboard is not a dashboard JSON"
grep -q "path: /usr/share/dataplane/grafana$" "$grafana/provisioning/dashboards/dataplane.yaml" \
    || fail "the dashboard provider does not load /usr/share/dataplane/grafana"
ok "Grafana dashboard and provisioning files under /usr/share/dataplane/grafana"

zcat "$root/usr/share/man/man1/dataplane.1.gz" | grep -q '^\.TH dataplane 1' || fail "man page header"
for section in SIGNALS FILES "SEE ALSO"; do
    zcat "$root/usr/share/man/man1/dataplane.1.gz" | grep -q "^\.SH \"\?$section" \
        || fail "dataplane(1) has no $section section"
done
zcat "$root/usr/share/man/man1/dataplane.1.gz" | grep -q 'dataplane@\.service' \
    || fail "dataplane(1) does not name the unit"
if command -v man >/dev/null; then
    MANPATH="$root/usr/share/man" man -w dataplane >/dev/null || fail "man does not find dataplane(1)"
    MANPATH="$root/usr/share/man" man -P cat dataplane-peer-add 2>/dev/null | grep -q 'dataplane-peer-add' \
        || fail "man dataplane-peer-add does not render"
fi
# bash completes `dataplane pe` to `peer` with the installed completion.
completion="$(bash -c 'source "$1"; COMP_WORDS=(dataplane pe); COMP_CWORD=1; COMP_LINE="dataplane pe"
    COMP_POINT=${#COMP_LINE}; _dataplane dataplane pe dataplane; printf "%s\n" "${COMPREPLY[@]}"' _ \
    "$root/usr/share/bash-completion/completions/dataplane")"
grep -qx peer <<<"$completion" || fail "bash completion of 'dataplane pe' gave: $completion"
head -1 "$root/usr/share/zsh/vendor-completions/_dataplane" | grep -q '^#compdef dataplane' \
    || fail "zsh completion has no #compdef dataplane"
grep -q '^complete -c dataplane ' "$root/usr/share/fish/vendor_completions.d/dataplane.fish" \
    || fail "fish completion has no 'complete -c dataplane'"
ok "man pages and bash/zsh/fish completions"

# --- the unit -------------------------------------------------------------------------------
unit="$root/lib/systemd/system/dataplane@.service"
value() { sed -n "s/^$1=//p" "$unit"; }
caps="CAP_NET_ADMIN CAP_NET_RAW CAP_BPF CAP_IPC_LOCK" # SECURITY.md, "What runs as root"
grep -q "AmbientCapabilities=$caps" SECURITY.md || fail "SECURITY.md no longer lists $caps"
[ "$(value AmbientCapabilities)" = "$caps" ] || fail "AmbientCapabilities=$(value AmbientCapabilities)"
[ "$(value CapabilityBoundingSet)" = "$caps" ] || fail "CapabilityBoundingSet=$(value CapabilityBoundingSet)"
[ "$(value ExecStart)" = "/usr/bin/dataplane --config /etc/dataplane/%i.toml" ] || fail "ExecStart"
[ "$(value ExecReload)" = '/bin/kill -HUP $MAINPID' ] || fail "ExecReload"
[ "$(value Restart)" = on-failure ] || fail "Restart"
[ "$(value RuntimeDirectory)" = "dataplane wireguard" ] || fail "RuntimeDirectory"
for family in AF_XDP AF_NETLINK AF_UNIX AF_INET AF_INET6; do
    value RestrictAddressFamilies | grep -qw "$family" || fail "RestrictAddressFamilies lacks $family"
done
value SystemCallFilter | grep -qw bpf || fail "SystemCallFilter does not allow bpf"
ok "unit: the four capabilities, ExecStart/ExecReload/Restart/RuntimeDirectory, address families"

if command -v systemd-analyze >/dev/null; then
    # verify resolves the unit's dependencies and commands inside --root: give the root the
    # host's own units and kill(1), as the system the package installs on has them.
    cp -rn /lib/systemd/system/. "$root/lib/systemd/system/"
    mkdir -p "$root/bin"
    cp "$(type -P kill)" "$root/bin/kill"
    # verify exits 0 on warnings (unknown keys, address families, system calls): fail on output.
    MANPATH="$root/usr/share/man" systemd-analyze verify --root="$root" dataplane@gw.service \
        > "$work/verify.out" 2>&1 || { cat "$work/verify.out" >&2; fail "systemd-analyze verify"; }
    [ ! -s "$work/verify.out" ] || { cat "$work/verify.out" >&2; fail "systemd-analyze verify warned"; }
    security="$(systemd-analyze security --offline=yes --root="$root" dataplane@gw.service 2>&1 \
        | sed -n 's/.*Overall exposure level for dataplane@gw.service: \([0-9.]*\).*/\1/p')"
    [ -n "$security" ] || fail "systemd-analyze security gave no exposure level"
    awk -v s="$security" 'BEGIN { exit !(s <= 3.0) }' \
        || fail "systemd-analyze security: exposure $security, above 3.0"
    ok "unit: systemd-analyze verify clean, security exposure $security (at most 3.0)"
else
    echo "test-deb: skip: systemd-analyze not installed (apt-get install systemd), the unit is not verified" >&2
fi

# --- removal --------------------------------------------------------------------------------
"${dpkg_root[@]}" --purge dataplane > "$work/dpkg-purge.log" 2>&1 \
    || { cat "$work/dpkg-purge.log" >&2; fail "dpkg --purge"; }
[ ! -e "$root/usr/bin/dataplane" ] || fail "the binary is still there after purge"
[ ! -e "$unit" ] || fail "the unit is still there after purge"
ok "purged: binary and unit gone"
echo "test-deb: all checks passed"
