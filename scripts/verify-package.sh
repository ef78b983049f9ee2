#!/usr/bin/env bash
# Checks a Function App package: exactly host.json, function-resume/function.json and handler
# (mode 0755) at the root, and a handler that needs no glibc newer than GLIBC_CEILING (or none).
# Usage: scripts/verify-package.sh dist/resume-gateway-<version>.zip
set -euo pipefail

GLIBC_CEILING="${GLIBC_CEILING:-2.17}"

fail() { printf 'verify-package: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 1 ]] || fail "usage: $0 <package.zip>"
zip_path="$1"
[[ -f "$zip_path" ]] || fail "no such file: $zip_path"
for tool in zipinfo unzip objdump; do
  command -v "$tool" >/dev/null || fail "$tool is needed (apt-get install unzip binutils)"
done

# 1. Exactly the three files the Functions host needs, nothing else (no directory entries either).
expected=$'function-resume/function.json\nhandler\nhost.json'
actual="$(zipinfo -1 "$zip_path" | LC_ALL=C sort)"
[[ "$actual" == "$expected" ]] || fail "$zip_path holds:
$actual
expected exactly:
$expected"

# 2. Unix modes recorded in the archive: handler executable, the JSON files plain.
mode_of() { zipinfo -l "$zip_path" "$1" | awk -v f="$1" '$NF == f { print $1 }'; }
[[ "$(mode_of handler)" == "-rwxr-xr-x" ]] || fail "handler must be mode 0755, is $(mode_of handler)"
for f in host.json function-resume/function.json; do
  [[ "$(mode_of "$f")" == "-rw-r--r--" ]] || fail "$f must be mode 0644, is $(mode_of "$f")"
done

# 3. The binary: x86-64 ELF, and no versioned glibc symbol above the ceiling.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
unzip -q "$zip_path" handler -d "$work"
handler="$work/handler"
# Greps read all their input (no -q): under pipefail an early exit would SIGPIPE the producer.
head -c 4 "$handler" | od -An -c | tr -d ' \n' | grep '^177ELF$' >/dev/null || fail "handler is not an ELF binary"
objdump -f "$handler" | grep 'elf64-x86-64' >/dev/null || fail "handler is not x86-64: $(objdump -f "$handler" | grep format)"

glibc_versions="$(objdump -T "$handler" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV || true)"
if [[ -z "$glibc_versions" ]]; then
  if objdump -p "$handler" | grep 'NEEDED' >/dev/null; then
    fail "handler is dynamically linked but lists no GLIBC symbol versions"
  fi
  echo "verify-package: handler is fully static"
else
  highest="$(printf '%s\n' "$glibc_versions" | tail -1)"
  newest="$(printf '%s\n%s\n' "$highest" "$GLIBC_CEILING" | sort -V | tail -1)"
  if [[ "$newest" != "$GLIBC_CEILING" ]]; then
    fail "handler needs GLIBC_$highest, above the ceiling GLIBC_$GLIBC_CEILING (versions: $(tr "\n" " " <<<"$glibc_versions")); e.g.:
$(objdump -T "$handler" | grep -F "GLIBC_$highest" | head -5)"
  fi
  echo "verify-package: handler needs at most GLIBC_$highest (ceiling GLIBC_$GLIBC_CEILING)"
fi
echo "verify-package: $zip_path OK ($(wc -c <"$zip_path") bytes)"
