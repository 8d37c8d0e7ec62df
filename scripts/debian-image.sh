#!/usr/bin/env bash
# Builds a Debian bookworm guest for jvmm from Debian's packages only, and prints the folder that holds it:
#   debian.qcow2   root file system (ext4, no partition table: root=/dev/vda), systemd, udev, openssh-server,
#                  systemd-networkd doing DHCP on every ethernet NIC, a serial getty (from console=ttyS0)
#   vmlinuz, initrd.img   Debian's kernel for virtual machines (linux-image-cloud-amd64: the drivers a VM has,
#                  not every PC's, so udev loads little and the initramfs is small) and its initramfs
#   id_ed25519[.pub]      an ssh key for root, made here (the image trusts the public half)
# The recipe, for making your own: debootstrap into a folder, configure it (below), `mkfs.ext4 -d` the folder into
# an image file (no loop mount, no partition table), `qemu-img convert -O qcow2`. Boot it with
#   ./jvmm run --kernel DIR/vmlinuz --initrd DIR/initrd.img --disk DIR/debian.qcow2,transport=pci \
#     --cmdline "console=ttyS0 root=/dev/vda rw" --cpus 2 --memory 1G --net user,hostfwd=tcp:127.0.0.1:2222-:22
# and log in as root (no password on the console) or `ssh -i DIR/id_ed25519 -p 2222 root@127.0.0.1`.
# Cached under ~/.cache/jvmm/debian-guest/<recipe hash> (JVMM_CACHE moves it); never committed. Needs root
# (debootstrap) the first time, and Debian's mirror (the one apt uses here); installs debootstrap if missing.
set -euo pipefail
self=$(readlink -f "${BASH_SOURCE[0]}")
cache="${JVMM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jvmm}/debian-guest"
recipe=$(sha256sum "$self" | cut -c1-12)
out="$cache/$recipe"
if [ -f "$out/debian.qcow2" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ]; then echo "$out"; exit 0; fi
die() { echo "debian-image.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "building the image needs root (debootstrap); run it once as root, e.g. sudo $0"
for tool in debootstrap:debootstrap mkfs.ext4:e2fsprogs qemu-img:qemu-utils ssh-keygen:openssh-client; do
  command -v "${tool%%:*}" >/dev/null && continue
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${tool#*:}" >/dev/null 2>&1 ||
    die "cannot install ${tool#*:} (Debian package for ${tool%%:*})"
done
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(http[^ ]*debian\)\/* bookworm main.*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
mkdir -p "$cache"
avail=$(df -Pk "$cache" | awk 'NR == 2 { print $4 }')
[ "$avail" -gt $((4 * 1024 * 1024)) ] || die "needs 4 GiB free in $cache"
work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'umount -R "$work/root/proc" "$work/root/sys" "$work/root/dev" 2>/dev/null || true; rm -rf "$work"' EXIT
root="$work/root"

echo "debian-image.sh: debootstrap bookworm from $mirror (a few minutes, once)" >&2
packages=systemd,systemd-sysv,udev,dbus,openssh-server,linux-image-cloud-amd64,initramfs-tools,e2fsprogs,iproute2,netbase,ca-certificates,curl,procps,less
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# The configuration a cloud image would get from cloud-init, written once.
echo jvmm-debian >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 jvmm-debian\n' >"$root/etc/hosts"
echo '/dev/vda / ext4 defaults,errors=remount-ro 0 1' >"$root/etc/fstab"
# The initramfs carries fsck for the root file system only if it knows its type: its hook would probe /dev/vda,
# which a chroot does not have, so the type is given and the initramfs (made before this fstab) made again.
echo 'FSTYPE=ext4' >"$root/etc/initramfs-tools/conf.d/root-fstype.conf"
chroot "$root" update-initramfs -u -k all >"$work/initramfs.log" 2>&1 ||
  { tail -n 20 "$work/initramfs.log" >&2; die "update-initramfs failed (log above)"; }
: >"$root/etc/machine-id" # made at first boot, so that every copy of the image has its own
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nType=ether\n\n[Network]\nDHCP=yes\n' >"$root/etc/systemd/network/80-dhcp.network"
ln -sf /lib/systemd/system/systemd-networkd.service "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
# A slow host (the emulated machine, a loaded CI runner) can take longer than systemd's 90 s for udev to announce
# /dev/ttyS0, and the serial getty then fails for good: devices get ten minutes.
mkdir -p "$root/etc/systemd/system.conf.d"
printf '[Manager]\nDefaultDeviceTimeoutSec=600\n' >"$root/etc/systemd/system.conf.d/slow-hosts.conf"
# No resolver daemon in minbase: the user-mode network's DNS, and QEMU's, is 10.0.2.3.
echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"
chroot "$root" passwd -d root >/dev/null # console login without a password; sshd wants a key
# The host key is made at first boot, so that no two copies of the image share it: one ed25519 key (RSA keys
# take long to make on a slow machine). ssh.service's own ExecStartPre, sshd -t, needs it: the list is cleared and
# given again in order.
rm -f "$root"/etc/ssh/ssh_host_*
echo 'HostKey /etc/ssh/ssh_host_ed25519_key' >"$root/etc/ssh/sshd_config.d/host-key.conf"
mkdir -p "$root/etc/systemd/system/ssh.service.d"
printf '%s\n' '[Service]' 'ExecStartPre=' \
  "ExecStartPre=/bin/sh -c 'test -f /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key'" \
  'ExecStartPre=/usr/sbin/sshd -t' >"$root/etc/systemd/system/ssh.service.d/host-keys.conf"
ssh-keygen -q -t ed25519 -N '' -C jvmm-debian-root -f "$work/id_ed25519"
install -d -m 700 "$root/root/.ssh"
install -m 600 "$work/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
rm -f "$root"/var/cache/apt/archives/*.deb

cp "$(ls "$root"/boot/vmlinuz-* | head -n 1)" "$work/vmlinuz"
cp "$(ls "$root"/boot/initrd.img-* | head -n 1)" "$work/initrd.img"
chmod 644 "$work/vmlinuz" "$work/initrd.img"
mkfs.ext4 -q -L debian -d "$root" "$work/debian.raw" 2G >/dev/null
qemu-img convert -O qcow2 "$work/debian.raw" "$work/debian.qcow2"
rm -f "$work/debian.raw"
mkdir -p "$out"
for f in vmlinuz initrd.img id_ed25519 id_ed25519.pub debian.qcow2; do mv "$work/$f" "$out/$f"; done
chmod 644 "$out/debian.qcow2" # the key stays 600: it is root's
for old in "$cache"/*/; do [ "${old%/}" = "$out" ] || rm -rf "${old%/}"; done # images of earlier recipes
echo "$out"
