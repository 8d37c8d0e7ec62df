#!/usr/bin/env bash
# Prints the path of Debian's stock kernel (bzImage), downloading it into a cache when absent.
#   debian-kernel.sh         the bzImage (used by the Linux boot tests)
#   debian-kernel.sh --deb   the linux-image .deb it came from (the outer machine takes its modules from it)
#   debian-kernel.sh --module NAME   one module of that kernel, NAME.ko (for a test's initramfs)
# A peer's artifact, fetched through Debian's packages only and never committed.
set -euo pipefail
cache="${JVMM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jvmm}/debian-kernel"
want=kernel module=
case "${1:-}" in
  --deb) want=deb ;;
  --module) want=module; module=${2:?"debian-kernel.sh: --module needs a module name"} ;;
esac
existing_kernel() { ls "$cache"/boot/vmlinuz-* 2>/dev/null | head -n 1 || true; }
existing_deb() { ls "$cache"/deb/linux-image-*.deb 2>/dev/null | head -n 1 || true; }
existing_module() { ls "$cache"/modules/*/"$module.ko" 2>/dev/null | head -n 1 || true; }
if [ "$want" = kernel ] && [ -n "$(existing_kernel)" ]; then existing_kernel; exit 0; fi
if [ "$want" = module ] && [ -n "$(existing_module)" ]; then existing_module; exit 0; fi
if [ -z "$(existing_deb)" ]; then
  find_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1; }
  pkg=$(find_pkg)
  if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null 2>&1 || true
    pkg=$(find_pkg)
  fi
  if [ -z "$pkg" ]; then echo "debian-kernel.sh: cannot find Debian's linux-image-amd64 (run apt-get update)" >&2; exit 1; fi
  mkdir -p "$cache/deb"
  tmp=$(mktemp -d "$cache/deb/.download.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  chmod 777 "$tmp" # apt-get download runs as the _apt user when started as root
  (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1) ||
    { echo "debian-kernel.sh: 'apt-get download $pkg' failed (no network to Debian's mirror, or no space in $cache)" >&2; exit 1; }
  mv "$tmp"/*.deb "$cache/deb/"
fi
deb=$(existing_deb)
if [ "$want" = deb ]; then echo "$deb"; exit 0; fi
tmp=$(mktemp -d "$cache/.extract.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ "$want" = module ]; then
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards "./lib/modules/*/$module.ko" 2>/dev/null ||
    { echo "debian-kernel.sh: $(basename "$deb") has no module $module.ko" >&2; exit 1; }
  ko=$(find "$tmp/lib/modules" -name "$module.ko" | head -n 1)
  version=${ko#"$tmp/lib/modules/"}
  version=${version%%/*}
  mkdir -p "$cache/modules/$version"
  cp "$ko" "$cache/modules/$version/.$module.ko.tmp" && mv "$cache/modules/$version/.$module.ko.tmp" "$cache/modules/$version/$module.ko"
  existing_module
  exit 0
fi
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
mkdir -p "$cache/boot"
cp "$tmp"/boot/vmlinuz-* "$cache/boot/"
existing_kernel
