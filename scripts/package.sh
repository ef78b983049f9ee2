#!/usr/bin/env bash
# Builds the Linux x86-64 `handler` so that it runs on any Functions Linux image whatever its
# glibc, checks it, and writes dist/resume-gateway-<version>.zip with exactly host.json,
# function-resume/function.json and handler (0755) at the root.
#
#   scripts/package.sh            # build + check + zip
#   scripts/package.sh --help
#
# Build: the musl target when it is installed (fully static); otherwise `cargo zigbuild` for
# x86_64-unknown-linux-gnu.2.17 (install with: pip install ziglang cargo-zigbuild).
# Environment: PACKAGE_TARGET=musl|gnu.2.17 forces one; CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,11s/^# \{0,1\}//p' "$0"
  exit 0
fi
[[ $# -eq 0 ]] || { echo "package: unknown argument $1 (see --help)" >&2; exit 2; }

fail() { printf 'package: %s\n' "$*" >&2; exit 1; }
command -v zip >/dev/null || fail "zip is needed (apt-get install zip)"

name="$(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.toml | head -1)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
[[ -n "$name" && -n "$version" ]] || fail "cannot read name/version from Cargo.toml"

musl=x86_64-unknown-linux-musl
choice="${PACKAGE_TARGET:-}"
if [[ -z "$choice" ]]; then
  if rustup target list --installed 2>/dev/null | grep -x "$musl" >/dev/null; then choice=musl; else choice=gnu.2.17; fi
fi

target_dir="${CARGO_TARGET_DIR:-target}"
start=$SECONDS
case "$choice" in
  musl)
    echo "package: building for $musl (static)"
    cargo build --release --locked --target "$musl"
    binary="$target_dir/$musl/release/handler"
    ;;
  gnu.2.17)
    command -v cargo-zigbuild >/dev/null || fail "cargo-zigbuild is missing: pip install ziglang cargo-zigbuild"
    echo "package: building for x86_64-unknown-linux-gnu, glibc 2.17 (cargo zigbuild)"
    cargo zigbuild --release --locked --target x86_64-unknown-linux-gnu.2.17
    # cargo-zigbuild strips the glibc suffix from the output folder.
    binary="$target_dir/x86_64-unknown-linux-gnu/release/handler"
    ;;
  *) fail "PACKAGE_TARGET must be musl or gnu.2.17, not $choice" ;;
esac
[[ -x "$binary" ]] || fail "build produced no $binary"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/function-resume" dist
install -m 0644 host.json "$stage/host.json"
install -m 0644 function-resume/function.json "$stage/function-resume/function.json"
install -m 0755 "$binary" "$stage/handler"

zip_path="dist/$name-$version.zip"
rm -f "$zip_path"
# -X: no extra attributes; -D: no directory entries; fixed order for a stable listing.
(cd "$stage" && zip -q -X -D "$OLDPWD/$zip_path" host.json function-resume/function.json handler)

scripts/verify-package.sh "$zip_path"
echo "package: wrote $zip_path in $((SECONDS - start)) s (handler $(wc -c <"$binary") bytes)"
