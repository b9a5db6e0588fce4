#!/usr/bin/env bash
# Install the Debian packages later chapters need, only when missing.
# Never fails the build: when it cannot install, it says what is missing and
# which chapters cannot run, and exits 0 (the chapters themselves skip cleanly).
set -u
# package -> chapters that need it
declare -A NEEDED_BY=(
  [gcc-arm-none-eabi]="7 (firmware)"
  [libnewlib-arm-none-eabi]="7 (firmware)"
  [qemu-system-arm]="7 (firmware)"
  [chromium]="1 (in-browser demo test) and the rendered-book check"
  [clang]="6 (C engine: libFuzzer smoke run)"
  [libclang-rt-14-dev]="6 (C engine: libFuzzer runtime)"
  [lld-14]="6 (C engine as WebAssembly: wasm-ld for the book's engine page and its test)"
)
# For tests: extra package names to require, and pretending not to be root.
for pkg in ${ATOME_SYSDEPS_EXTRA:-}; do NEEDED_BY[$pkg]="(test only)"; done
is_root() { [ "$(id -u)" -eq 0 ] && [ -z "${ATOME_SYSDEPS_AS_USER:-}" ]; }
missing=()
for pkg in "${!NEEDED_BY[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "sysdeps: all system packages present"
  exit 0
fi
IFS=$'\n' missing=($(sort <<<"${missing[*]}")); unset IFS
echo "sysdeps: missing ${missing[*]}"
if ! is_root || ! command -v apt-get >/dev/null; then
  echo "sysdeps: cannot install (need root and apt-get). Install them yourself:" >&2
  echo "  apt-get install --no-install-recommends ${missing[*]}" >&2
  for pkg in "${missing[@]}"; do
    echo "  without $pkg: chapter ${NEEDED_BY[$pkg]} cannot run" >&2
  done
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/atome-apt.log 2>&1; then
  apt-get update -q >>/tmp/atome-apt.log 2>&1
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/atome-apt.log 2>&1; then
    echo "sysdeps: apt-get install failed (log: /tmp/atome-apt.log); missing ${missing[*]}" >&2
    for pkg in "${missing[@]}"; do
      echo "  without $pkg: chapter ${NEEDED_BY[$pkg]} cannot run" >&2
    done
    exit 0
  fi
fi
echo "sysdeps: installed ${missing[*]}"
