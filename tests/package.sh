#!/usr/bin/env bash
# Tests for the release package: the real zip passes scripts/verify-package.sh, and the checker
# refuses packages that are wrong (extra file, missing file, wrong mode, binary over the glibc
# ceiling). Also starts the packaged handler the way the Functions host does.
# Usage: tests/package.sh dist/resume-gateway-<version>.zip   (run by .ci/run after scripts/package.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

zip_path="${1:?usage: $0 <package.zip>}"
native="${NATIVE_HANDLER:-target/debug/handler}"   # built by `cargo test` for this machine's glibc
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $*"; }

work="$(mktemp -d)"
pid=""
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# A package built by hand from the real one, with one thing changed.
make_zip() { # make_zip <out.zip> <handler-binary> <handler-mode> [extra file]
  local out="$1" bin="$2" mode="$3" extra="${4:-}" dir
  dir="$(mktemp -d -p "$work")"
  mkdir -p "$dir/function-resume"
  install -m 0644 host.json "$dir/host.json"
  install -m 0644 function-resume/function.json "$dir/function-resume/function.json"
  install -m "$mode" "$bin" "$dir/handler"
  local files=(host.json function-resume/function.json handler)
  if [[ -n "$extra" ]]; then install -m 0644 "$extra" "$dir/$(basename "$extra")"; files+=("$(basename "$extra")"); fi
  (cd "$dir" && zip -q -X -D "$out" "${files[@]}")
}
expect_refused() { # expect_refused <name> <zip> <message fragment>
  local out
  if out="$(scripts/verify-package.sh "$2" 2>&1)"; then
    not_ok "$1: accepted"
  elif grep -qF -- "$3" <<<"$out"; then
    ok "$1: refused ($3)"
  else
    not_ok "$1: refused for another reason: $out"
  fi
}

# 1. The real package.
if scripts/verify-package.sh "$zip_path"; then ok "real package passes layout, modes and glibc ceiling"; else not_ok "real package"; fi
entries="$(zipinfo -1 "$zip_path" | LC_ALL=C sort | tr '\n' ' ')"
if [[ "$entries" == "function-resume/function.json handler host.json " ]]; then ok "exactly three entries: $entries"; else not_ok "entries: $entries"; fi
unzip -q "$zip_path" handler -d "$work/real"
real="$work/real/handler"
top="$(objdump -T "$real" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
if [[ "$(printf '%s\n2.17\n' "$top" | sort -V | tail -1)" == "2.17" ]]; then ok "packaged handler needs at most GLIBC_$top"; else not_ok "packaged handler needs GLIBC_$top"; fi

# 2. The checker is not vacuous.
make_zip "$work/extra.zip" "$real" 0755 README.md
expect_refused "extra file" "$work/extra.zip" "expected exactly"
make_zip "$work/mode.zip" "$real" 0644
expect_refused "handler not executable" "$work/mode.zip" "handler must be mode 0755"
(cd "$work" && cp "$OLDPWD/$zip_path" missing.zip && zip -q -d missing.zip function-resume/function.json)
expect_refused "missing function.json" "$work/missing.zip" "expected exactly"
# `grep >/dev/null`, not `grep -q`: under pipefail an early exit SIGPIPEs objdump and fails the test.
if [[ -x "$native" ]] && objdump -T "$native" | grep 'GLIBC_2\.\(1[89]\|[2-9][0-9]\)' >/dev/null; then
  make_zip "$work/glibc.zip" "$native" 0755
  expect_refused "binary linked against this machine's newer glibc" "$work/glibc.zip" "above the ceiling GLIBC_2.17"
else
  not_ok "no native build at $native that needs glibc > 2.17 to test the ceiling with (run cargo test first)"
fi

# 3. The packaged handler starts as the Functions host starts it and answers a dry-run resume.
port=$((20000 + RANDOM % 20000))
FUNCTIONS_CUSTOMHANDLER_PORT=$port RESUME_DRY_RUN=true RUST_LOG=warn "$real" >"$work/out.log" 2>&1 &
pid=$!
ready=""
for _ in $(seq 1 100); do
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then ready=1; break; fi
  sleep 0.05
done
if [[ -n "$ready" ]]; then
  answer="$(curl -s -H 'content-type: application/json' -d @samples/resume-callout.json "http://127.0.0.1:$port/api/function-resume")"
  if grep -q '"outcome":"dry-run"' <<<"$answer"; then ok "packaged handler answers a dry-run resume"; else not_ok "dry-run answer: $answer"; fi
else
  not_ok "packaged handler did not listen on $port: $(cat "$work/out.log")"
fi

echo "package: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
