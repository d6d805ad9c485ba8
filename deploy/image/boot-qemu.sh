#!/usr/bin/env bash
# Boot a built Numerek image under qemu-system-aarch64 and watch its first boot as a server.
#
#   sudo nice -n 19 deploy/image/boot-qemu.sh build/image/numerek-bookworm-arm64.img
#
# QEMU 7.2 (Debian 12) has no Raspberry Pi 4 machine, so this boots the image's own kernel,
# initramfs and root partition on QEMU's generic "virt" arm64 machine (the Debian kernel
# runs on both), with the image as a virtio disk: the firmware stage of a Pi (start4.elf,
# config.txt, the Pi's device tree) is skipped; everything from the kernel on is the image's.
# A copy of the image gets a numerek-setup.toml for a server on its FAT partition (mtools),
# and an SSH key made for this run. The guest's network is QEMU's user mode with
# restrict=on: it reaches nothing outside, only the two forwarded ports on 127.0.0.1 reach it.
# An i6300esb watchdog stands in for the Pi's bcm2835 one. The network card has no option ROM
# (romfile=): the kernel is booted directly, and Debian's qemu-system-arm without its
# recommended ipxe-qemu has no efi-virtio.rom (QEMU refuses to start without it otherwise).
#
# Checks: the first boot applies the setup; mosquitto and numerek-server run as systemd units
# (with their sandboxing); /health answers through the forwarded port; the journal is in RAM;
# systemd arms the hardware watchdog; the FAT partition is mounted and the device file is gone;
# the initramfs checked the root (fsck); a crashed kernel is reset by the watchdog.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
img=${1:?usage: boot-qemu.sh IMAGE}
out=${NUMEREK_QEMU_OUT:-$repo/build/qemu}
[ "$(id -u)" = 0 ] || { echo "run as root: sudo $0 $img" >&2; exit 1; }
# shellcheck source=deploy/lib.sh
. "$repo/deploy/lib.sh"
need_host_packages qemu-system-arm mtools fdisk openssh-client curl
rm -rf "$out" && mkdir -p "$out"
t0=$(date +%s)
elapsed() { echo "$(($(date +%s) - t0)) s"; }

cp --sparse=always "$img" "$out/boot.img"
start=$(sfdisk -d "$out/boot.img" | sed -n "s#^$out/boot.img1 : start= *\([0-9]*\),.*#\1#p")
fat="$out/boot.img@@$((start * 512))"
export MTOOLS_SKIP_CHECK=1
kernel=$(mdir -b -i "$fat" :: | sed 's#^::/##' | grep '^vmlinuz-' | sort -V | tail -1)
initrd=$(mdir -b -i "$fat" :: | sed 's#^::/##' | grep '^initrd.img-' | sort -V | tail -1)
mcopy -i "$fat" "::$kernel" "::$initrd" "$out/"
ssh-keygen -q -t ed25519 -N '' -C numerek-qemu-check -f "$out/key"
cat > "$out/numerek-setup.toml" <<EOF
role = "server"
hostname = "numerek-serwer"
server = "10.0.2.15"
timezone = "Europe/Warsaw"
ssh_authorized_key = "$(cat "$out/key.pub")"
EOF
mcopy -i "$fat" "$out/numerek-setup.toml" ::numerek-setup.toml

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port=$(free_port); ssh_port=$(free_port)
echo "booting $kernel under qemu-system-aarch64 -M virt (serial console: $out/console.log)"
qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 2048 -display none -monitor none \
  -serial "file:$out/console.log" \
  -kernel "$out/$kernel" -initrd "$out/$initrd" \
  -append "root=LABEL=RASPIROOT rw console=ttyAMA0 net.ifnames=0 systemd.show_status=1" \
  -drive "file=$out/boot.img,format=raw,if=virtio" \
  -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$http_port-:8080,hostfwd=tcp:127.0.0.1:$ssh_port-:22" \
  -device virtio-net-pci,netdev=n0,romfile= -device i6300esb &
qemu=$!
trap 'kill $qemu 2>/dev/null || true' EXIT

wait_for() {  # wait_for WHAT SECONDS COMMAND...
  local what=$1 limit=$2; shift 2
  local deadline=$(($(date +%s) + limit))
  until "$@" >/dev/null 2>&1; do
    kill -0 $qemu 2>/dev/null || { echo "FAILED: qemu exited while waiting for $what" >&2; tail -30 "$out/console.log"; exit 1; }
    [ "$(date +%s)" -lt "$deadline" ] || { echo "FAILED: no $what after ${limit}s" >&2; tail -40 "$out/console.log"; exit 1; }
    sleep 5
  done
  echo "$what after $(elapsed)"
}
wait_for "the kernel" 900 grep -q "Linux version" "$out/console.log"
wait_for "the first boot's result" 3600 grep -q "numerek-firstboot: this Pi is now\|numerek-firstboot: REFUSED" "$out/console.log"
grep "numerek-firstboot" "$out/console.log" | sed 's/^/  console: /' | head -12
wait_for "GET /health" 3600 curl -fsS -m 10 "http://127.0.0.1:$http_port/health"
curl -fsS "http://127.0.0.1:$http_port/health" | tee "$out/health.json"; echo

guest() { ssh -q -i "$out/key" -p "$ssh_port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o ConnectTimeout=30 root@127.0.0.1 "$@"; }
wait_for "SSH with the key from numerek-setup.toml" 600 guest true
guest 'set -x; hostname; systemctl is-active numerek-server mosquitto numerek-firstboot;
  systemctl is-enabled numerek-server numerek-kiosk numerek-display numerek-counter 2>&1;
  systemctl show -p RuntimeWatchdogUSec -p RebootWatchdogUSec; ls -l /dev/watchdog*;
  journalctl --header | grep -E "File path|Disk usage" | head -2; journalctl -b -k | grep -i watchdog | head -3;
  for m in / /boot/firmware /tmp; do findmnt -no SOURCE,FSTYPE,OPTIONS $m; done; ls /boot/firmware | grep numerek;
  stat -c "%U:%G %a %n" /etc/numerek /etc/numerek/numerek.toml /var/lib/numerek /var/lib/numerek/numerek.db;
  ls /etc/ssh/ssh_host_*_key.pub; cat /etc/machine-id;
  systemd-analyze security numerek-server.service | tail -1;
  numerek-provision list; journalctl -u numerek-server -b --no-pager | tail -5' 2>&1 | tee "$out/guest.txt"
# Last: the watchdog must reset a hung board. The kernel is crashed with panic=0 (it never
# reboots itself): only the watchdog (i6300esb: two 14 s stages) can start it again.
boots=$(grep -ac "Booting Linux on physical CPU" "$out/console.log" || true)
guest 'sysctl -q kernel.panic=0; echo 1 > /proc/sys/kernel/sysrq; (sleep 1; echo c > /proc/sysrq-trigger) >/dev/null 2>&1 &' || true
crashed=$(date +%s)
until [ "$(grep -ac "Booting Linux on physical CPU" "$out/console.log")" -gt "$boots" ]; do
  [ $(($(date +%s) - crashed)) -lt 300 ] || break  # the check below then fails
  sleep 2
done
if [ "$(grep -ac "Booting Linux on physical CPU" "$out/console.log")" -gt "$boots" ]; then
  echo "watchdog reset $(($(date +%s) - crashed)) s after the crash" | tee -a "$out/guest.txt"
fi
kill $qemu 2>/dev/null || true
wait $qemu 2>/dev/null || true
trap - EXIT

fails=0
expect() {  # expect WHAT PATTERN: a line of the guest's answers matches
  if grep -qE -- "$2" "$out/guest.txt"; then echo "  ok    $1"; else echo "  FAIL  $1"; fails=$((fails + 1)); fi
}
expect "host name from the setup file" "^numerek-serwer$"
[ "$(grep -cx active "$out/guest.txt")" -ge 3 ] && echo "  ok    numerek-server, mosquitto, numerek-firstboot active" \
  || { echo "  FAIL  numerek-server, mosquitto, numerek-firstboot active"; fails=$((fails + 1)); }
[ "$(grep -cx disabled "$out/guest.txt")" -ge 3 ] && echo "  ok    the other roles' units stay disabled" \
  || { echo "  FAIL  the other roles' units stay disabled"; fails=$((fails + 1)); }
expect "systemd arms the hardware watchdog (14 s)" "^RuntimeWatchdogUSec=14s$"
expect "a watchdog device" "/dev/watchdog0"
expect "the journal in RAM (/run/log/journal)" "File path: /run/log/journal"
expect "/boot/firmware is the FAT partition" "^/dev/vda1 +vfat"
expect "the setup file was applied and renamed" "^numerek-setup.done.toml$"
expect "the database is the server's, in /var/lib/numerek" "^numerek:numerek [0-9]+ /var/lib/numerek/numerek.db$"
expect "the server's own broker account, made at first boot" "^server "
expect "the watchdog reset the crashed kernel" "^watchdog reset [0-9]+ s after the crash$"
grep -aq "RASPIROOT: clean\|RASPIROOT: [0-9]* files\|fsck.ext4 .* /dev/vda2" "$out/console.log" \
  && echo "  ok    the initramfs checked the root file system (fsck)" \
  || { echo "  FAIL  the initramfs checked the root file system (fsck)"; fails=$((fails + 1)); }
[ "$fails" = 0 ] || { echo "FAILED: $fails check(s); see $out/guest.txt and $out/console.log"; exit 1; }
echo "PASSED: the image booted under qemu-system-aarch64 and became a server in $(elapsed) (results: $out)"
