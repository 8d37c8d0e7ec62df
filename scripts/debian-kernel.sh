#!/usr/bin/env bash
# Prints the path of Debian's stock kernel (bzImage), downloading it into a cache when absent.
# Used by the Linux boot tests: the kernel is a peer's artifact, never committed.
set -euo pipefail
cache="${JVMM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jvmm}/debian-kernel"
existing=$(ls "$cache"/boot/vmlinuz-* 2>/dev/null | head -n 1 || true)
if [ -n "$existing" ]; then echo "$existing"; exit 0; fi
mkdir -p "$cache"
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
  apt-get update -q >/dev/null 2>&1 || true
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
fi
if [ -z "$pkg" ]; then echo "debian-kernel.sh: cannot find Debian's linux-image-amd64 (run apt-get update)" >&2; exit 1; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 777 "$tmp"
(cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1) || { echo "debian-kernel.sh: apt-get download $pkg failed" >&2; exit 1; }
dpkg-deb -x "$tmp"/*.deb "$tmp/x"
mkdir -p "$cache/boot"
cp "$tmp"/x/boot/vmlinuz-* "$cache/boot/"
ls "$cache"/boot/vmlinuz-* | head -n 1
