#!/usr/bin/env bash
# One SD-card image for every Numerek role on Raspberry Pi 4 (Debian 12 "bookworm", arm64),
# from Debian packages only. The role is chosen at the first boot from numerek-setup.toml
# on the boot partition (deploy/image/numerek_firstboot.py).
#
#   sudo nice -n 19 deploy/image/build-image.sh         # -> build/image/numerek-bookworm-arm64.img
#   sudo deploy/image/check-image.sh build/image/numerek-bookworm-arm64.img
#
# Route: Debian's own Raspberry Pi images (the raspi-team's image-specs) are built by vmdb2
# from a YAML recipe: debootstrap, then linux-image-arm64 + raspi-firmware (+ the Wi-Fi
# firmware), a FAT partition labelled RASPIFIRM for /boot/firmware and an ext4 one labelled
# RASPIROOT for /. This script makes the same image with the same packages and labels, but
# without vmdb2's machinery: vmdb2 partitions through kpartx (device-mapper) and mounts the
# FAT partition, and neither device-mapper nor a vfat driver is available in containers such
# as CI's. So the root file system is made in a directory (debootstrap + chroot, under
# qemu-user, the code deploy/arm64-check.sh proves), and the image is assembled as files:
# mkfs.ext4 -d fills the root partition from the directory, mtools fills the FAT one,
# sfdisk writes the partition table. Nothing is mounted; the build needs no loop device.
#
# Output in build/image/ (git-ignored): the .img (sparse), its .sha256, the build log.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
NUMEREK_APT_CACHE=${NUMEREK_APT_CACHE:-${NUMEREK_ARM64_CACHE:-/var/cache/numerek-arm64}/apt-archives-image}
# shellcheck source=deploy/lib.sh
. "$repo/deploy/lib.sh"
# shellcheck source=deploy/image/assemble.sh
. "$repo/deploy/image/assemble.sh"
out=${NUMEREK_IMAGE_OUT:-$repo/build/image}
name=${NUMEREK_IMAGE_NAME:-numerek-bookworm-arm64}
root=$cache/image-root
fw_mib=256
[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, chroot): sudo $0" >&2; exit 1; }

t_start=$(date +%s)
mkdir -p "$out"
step() { printf '\n=== [%4ds] %s\n' $(($(date +%s) - t_start)) "$*"; }
trap unmount_all EXIT

step "host tools"
need_host_packages dosfstools mtools fdisk e2fsprogs
enable_binfmt
make_base 0

step "root file system (arm64 chroot)"
new_root "$root"
copy_sources "$repo" "$root/opt/numerek/src"

step "Debian packages: kernel, Raspberry Pi firmware, network, SSH (as Debian's raspi images)"
# raspi-firmware writes config.txt and cmdline.txt from these when the kernel is installed.
cat > "$root/etc/default/raspi-firmware" <<'EOF'
# Numerek image (read by raspi-firmware's kernel hook)
ROOTPART=LABEL=RASPIROOT
CONSOLES="tty1"
CMA=128M
KERNEL_ARCH="arm64"
EOF
install -m 0644 "$repo/deploy/image/files/etc/default/raspi-extra-cmdline" "$root/etc/default/raspi-extra-cmdline"
mkdir -p "$root/boot/firmware"
# The initramfs is made once, when the kernel is installed (that takes long under emulation);
# later packages' triggers would remake it for nothing (nothing they bring is in it).
mkdir -p "$root/etc/initramfs-tools"
echo update_initramfs=no > "$root/etc/initramfs-tools/update-initramfs.conf"
# fsck in the initramfs: cmdline.txt mounts the root rw, so only the initramfs can check it after
# a power cut. initramfs-tools' fsck hook finds the root's type by probing the device behind
# LABEL=RASPIROOT, which a chroot build does not have ("Couldn't identify type of root file
# system"): it then left fsck out and the Pi printed "fsck not present, so skipping root file
# system" at every boot (seen under QEMU). FSTYPE names the type instead of probing.
mkdir -p "$root/etc/initramfs-tools/conf.d"
echo FSTYPE=ext4 > "$root/etc/initramfs-tools/conf.d/60-numerek-fsck.conf"
in_root "$root" apt-get update -qq
# Our /etc/default/raspi-firmware and update-initramfs.conf are there before the packages that
# ship them: keep ours (confold) instead of dpkg asking on a terminal nobody reads.
DEBIAN_FRONTEND=noninteractive in_root "$root" apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  linux-image-arm64 raspi-firmware firmware-brcm80211 initramfs-tools kmod \
  systemd-timesyncd systemd-resolved openssh-server avahi-daemon libnss-mdns \
  e2fsprogs dosfstools parted fdisk nano less sudo iputils-ping \
  > "$out/apt.log" 2>&1 || { tail -30 "$out/apt.log"; exit 1; }
# systemd-resolved made resolv.conf a link into /run: the chroot needs the host's for pip.
rm -f "$root/etc/resolv.conf" && cp /etc/resolv.conf "$root/etc/resolv.conf"

step "Numerek: install.sh for every role (the path a Pi runs), nothing started"
export NUMEREK_ENV="NUMEREK_OFFLINE=1 NUMEREK_IMAGE=1"
for role in server kiosk display counter; do
  in_root "$root" /opt/numerek/src/systemd/install.sh "$role" > "$out/install-$role.log" 2>&1 \
    || { tail -30 "$out/install-$role.log"; echo "install.sh $role FAILED" >&2; exit 1; }
done
cp "$root/var/log/numerek-pip.log" "$out/pip.log"
pip_report "$out/pip.log" "$out" "$root"

step "image settings: first boot, journal in RAM, watchdog, network, SSH"
(cd "$repo/deploy/image/files" && find etc -type f) | while read -r f; do
  install -D -m 0644 "$repo/deploy/image/files/$f" "$root/$f"
done
cat > "$root/usr/local/sbin/numerek-firstboot" <<'EOF'
#!/bin/sh
# Numerek first boot (numerek-firstboot.service): the current release's script.
exec /opt/numerek/venv/bin/python /opt/numerek/current/share/deploy/image/numerek_firstboot.py "$@"
EOF
chmod 0755 "$root/usr/local/sbin/numerek-firstboot"
cat > "$root/etc/fstab" <<'EOF'
# Numerek image. noatime and a 10-minute commit interval keep writes off the SD card;
# /tmp is in RAM. The journal is in RAM too (journald.conf.d/60-numerek.conf).
LABEL=RASPIROOT  /               ext4   rw,noatime,commit=600,errors=remount-ro  0 1
LABEL=RASPIFIRM  /boot/firmware  vfat   rw,noatime,umask=0077                    0 2
tmpfs            /tmp            tmpfs  nosuid,nodev,size=128M                   0 0
EOF
echo numerek > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tnumerek\n' > "$root/etc/hosts"
ln -sf /usr/share/zoneinfo/Europe/Warsaw "$root/etc/localtime"
echo Europe/Warsaw > "$root/etc/timezone"
# Units: the role's unit and the broker are enabled by the first boot, not here.
in_root "$root" systemctl disable -q numerek-server.service numerek-kiosk.service numerek-display.service \
  numerek-counter.service mosquitto.service
in_root "$root" systemctl enable -q numerek-firstboot.service systemd-networkd.service systemd-timesyncd.service \
  systemd-resolved.service ssh.service avahi-daemon.service
# Per-card identity is made at the first boot: machine id (systemd), SSH host keys (the ssh drop-in).
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
# root has no password: log in with the SSH key from numerek-setup.toml, or at the console
# after setting one from another machine (docs/deployment.md).
in_root "$root" passwd -l root >/dev/null
cp "$repo/deploy/image/files/boot/firmware/numerek-setup.example.toml" "$root/boot/firmware/"

step "clean up the root file system"
echo update_initramfs=yes > "$root/etc/initramfs-tools/update-initramfs.conf"
rm -rf "$root/var/lib/apt/lists/"* "$root/var/log/numerek-pip.log" "$root/etc/apt/apt.conf.d/10keep-debs" \
  "$root/etc/dpkg/dpkg.cfg.d/10numerek-build" "$root/etc/ssl/numerek-build-ca.pem"
ls "$root/boot/firmware" > "$out/firmware-files.txt"
grep -q '^kernel=' "$root/boot/firmware/config.txt" || { echo "raspi-firmware wrote no config.txt" >&2; exit 1; }
# (apt's and pip's caches are bind mounts of the build cache: gone from the image once unmounted.)
unmount_all
# The chroot's resolv.conf was the build host's: leave the image's to systemd-networkd's DHCP.
rm -f "$root/etc/resolv.conf"
ln -s ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

step "assemble the image: FAT RASPIFIRM + ext4 RASPIROOT (mtools, mkfs.ext4 -d, sfdisk)"
work=$out/parts
rm -rf "$work" && mkdir -p "$work/firmware"
mv "$root/boot/firmware/"* "$work/firmware/"
img=$out/$name.img
assemble_image "$root" "$work/firmware" "$img" "$fw_mib"
rm -rf "$work"
(cd "$out" && sha256sum "$name.img" > "$name.img.sha256")
sfdisk -l "$img"
total=$(($(date +%s) - t_start))
echo "built $img ($(du -h --apparent-size "$img" | cut -f1), $(du -h "$img" | cut -f1) on disk) in $((total / 60)) min $((total % 60)) s"
echo "flash: xz -T0 -k $img; then Raspberry Pi Imager 'Use custom', or: sudo dd if=$img of=/dev/sdX bs=4M conv=fsync"
