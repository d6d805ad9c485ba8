#!/usr/bin/env bash
# Check a built Numerek image without a board: partitions, firmware, units, config, users,
# permissions; then its first boot, run on a copy of the image in an arm64 chroot.
#
#   sudo deploy/image/check-image.sh build/image/numerek-bookworm-arm64.img
#   deploy/image/check-image.sh --contents-only IMAGE    # no root, no chroot: what CI runs
#
# The contents are read without mounting anything: the FAT partition with mtools, the ext4
# root with debugfs (files copied out, owners and modes read from the inodes), so any user
# can run that part, in a container without loop devices or a vfat driver (tests/
# test_image_check.py runs it on a small image made in a temporary folder). The first boot
# needs root: the copy's root partition is mounted through a loop device and the image's own
# arm64 Python runs in a chroot under qemu-user. Exit 0 = every check held.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
contents_only=0
if [ "${1:-}" = --contents-only ]; then contents_only=1; shift; fi
img=${1:?usage: check-image.sh [--contents-only] IMAGE}
[ "$contents_only" = 1 ] || [ "$(id -u)" = 0 ] \
  || { echo "run as root (the first boot runs in a chroot): sudo $0 $img, or $0 --contents-only $img" >&2; exit 1; }
# shellcheck source=deploy/lib.sh
. "$repo/deploy/lib.sh"
for t in sfdisk mdir mtype mlabel debugfs dumpe2fs od; do
  command -v "$t" >/dev/null || { echo "check-image.sh needs $t (Debian: fdisk, mtools, e2fsprogs, coreutils)" >&2; exit 1; }
done

fails=0
ok() { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*"; fails=$((fails + 1)); }
expect() {  # expect DESCRIPTION COMMAND...: the command must succeed
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}

work=$(mktemp -d "${TMPDIR:-/tmp}/numerek-image-check.XXXXXX")
mnt=$work/mnt
cleanup() {
  unmount_all
  if mountpoint -q "$mnt" 2>/dev/null; then umount "$mnt"; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== partitions"
sfdisk -d "$img" > "$work/table"
start() { sed -n "s#^$img$1 : start= *\([0-9]*\),.*#\1#p" "$work/table"; }
p1=$(($(start 1) * 512)); p2=$(($(start 2) * 512))
expect "two partitions: FAT32 (type c) then Linux (83)" grep -q "type=c" "$work/table"
expect "partition 2 is Linux" grep -q "type=83" "$work/table"
fat="$img@@$p1"
expect "FAT label RASPIFIRM" sh -c "MTOOLS_SKIP_CHECK=1 mlabel -s -i '$fat' :: | grep -q RASPIFIRM"
e2label_of=$(dumpe2fs -h "$img?offset=$p2" 2>/dev/null | sed -n 's/^Filesystem volume name: *//p' || true)
[ "$e2label_of" = RASPIROOT ] && ok "ext4 label RASPIROOT" || bad "ext4 label RASPIROOT (got '$e2label_of')"

echo "== boot partition (raspi-firmware)"
MTOOLS_SKIP_CHECK=1 mdir -b -i "$fat" :: | sed 's#^::/##' > "$work/fat-files"
for f in config.txt cmdline.txt start4.elf fixup4.dat bcm2711-rpi-4-b.dtb numerek-setup.example.toml; do
  expect "/boot/firmware/$f" grep -qx "$f" "$work/fat-files"
done
expect "a kernel and its initramfs" sh -c "grep -q '^vmlinuz-' '$work/fat-files' && grep -q '^initrd.img-' '$work/fat-files'"
# The initramfs checks the root before mounting it (cmdline.txt mounts it rw): it must hold
# fsck and fsck.ext4 (build-image.sh's FSTYPE=ext4: a chroot build cannot probe the root). The
# member names of its newc cpio are plain text, each after an 8-digit hex header field.
initrd=$(grep '^initrd.img-' "$work/fat-files" | sort -V | tail -1 || true)
if [ -n "$initrd" ]; then
  MTOOLS_SKIP_CHECK=1 mcopy -n -i "$fat" "::$initrd" "$work/initrd"
  { zcat -f "$work/initrd" 2>/dev/null || zstdcat "$work/initrd" 2>/dev/null || true; } | tr '\0' '\n' > "$work/initrd-names"
  expect "the initramfs can check the root file system (fsck and fsck.ext4)" sh -c \
    "grep -q '[0-9A-Fa-f]\{8\}\(usr/\)\{0,1\}sbin/fsck\$' '$work/initrd-names' && grep -q '[0-9A-Fa-f]\{8\}\(usr/\)\{0,1\}sbin/fsck\.ext4\$' '$work/initrd-names'"
fi
MTOOLS_SKIP_CHECK=1 mtype -i "$fat" ::cmdline.txt > "$work/cmdline.txt" 2>/dev/null || true  # missing: its checks fail
MTOOLS_SKIP_CHECK=1 mtype -i "$fat" ::config.txt > "$work/config.txt" 2>/dev/null || true  # missing: its checks fail
expect "cmdline: root=LABEL=RASPIROOT" grep -q "root=LABEL=RASPIROOT" "$work/cmdline.txt"
expect "cmdline: quiet boot, no cursor (the screen roles)" grep -q "vt.global_cursor_default=0" "$work/cmdline.txt"
expect "config.txt: 64-bit kernel" grep -q "^arm_64bit=1" "$work/config.txt"
expect "no setup file yet (one image for every card)" sh -c "! grep -qx numerek-setup.toml '$work/fat-files'"

echo "== root file system (read with debugfs, not mounted)"
part="$img?offset=$p2"
dbg() { debugfs -R "$1" "$part" 2>/dev/null; }
inode() { dbg "stat \"$1\""; }                       # debugfs's description of one inode
link_of() { inode "$1" | sed -n 's/^.*[Ll]ink dest: "\(.*\)"$/\1/p'; }
owner_mode() {  # "uid:gid mode" as stat -c '%u:%g %a' prints it
  inode "$1" | awk '/^Inode:/ {m=$0; sub(/.*Mode: */,"",m); sub(/ .*/,"",m); sub(/^0+/,"",m)}
    /^User:/ {print $2 ":" $4 " " m}'
}
executable() {  # a regular file with x bits
  inode "$1" | grep -q 'Type: regular' && [ $((8#$(inode "$1" | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p') & 8#111)) -ne 0 ]
}
r=$work/root
mkdir -p "$r/var/lib/dpkg" "$r/usr/local" "$r/var/lib"
dbg "rdump /etc $r" >/dev/null
dbg "dump /var/lib/dpkg/status $r/var/lib/dpkg/status" >/dev/null
dbg "rdump /usr/local/sbin $r/usr/local" >/dev/null
dbg "rdump /var/lib/numerek $r/var/lib" >/dev/null || true
expect "fstab mounts RASPIFIRM on /boot/firmware and / with noatime" \
  sh -c "grep -q '^LABEL=RASPIFIRM *\/boot\/firmware' $r/etc/fstab && grep -q '^LABEL=RASPIROOT *\/ .*noatime' $r/etc/fstab"
expect "packages: linux-image-arm64, raspi-firmware, mosquitto, openssh-server" \
  sh -c "for p in linux-image-arm64 raspi-firmware mosquitto openssh-server systemd-timesyncd; do grep -q \"^Package: \$p\$\" $r/var/lib/dpkg/status || exit 1; done"
# ELF e_machine (bytes 18-19) 0xb7 = AArch64
# (head closes the pipe after 20 bytes: debugfs then dies of SIGPIPE, which pipefail reports.)
machine=$(dbg "cat /usr/bin/python3.11" | head -c 20 | od -An -tx1 -j18 -N2 | tr -d ' \n' || true)
[ "$machine" = b700 ] && ok "programs are arm64 (python3.11 is an AArch64 ELF)" || bad "programs are arm64 (python3.11: e_machine '$machine')"
cur=$(link_of /opt/numerek/current || true)
[ -n "$cur" ] && inode "/opt/numerek/$cur/RELEASE" | grep -q 'Type: regular' && ok "release $cur is current" \
  || bad "/opt/numerek/current points at a release"
expect "/opt/numerek/venv goes through current" test "$(link_of /opt/numerek/venv)" = current/venv
wants=$r/etc/systemd/system/multi-user.target.wants
for role in server kiosk display counter; do
  expect "numerek-$role installed" executable "/opt/numerek/$cur/venv/bin/numerek-$role"
  expect "numerek-$role.service installed, not enabled (the first boot enables one)" \
    sh -c "test -f $r/etc/systemd/system/numerek-$role.service && ! test -L $wants/numerek-$role.service"
done
expect "roles recorded: server kiosk display counter" \
  test "$(dbg "cat /opt/numerek/roles" | sort | xargs)" = "counter display kiosk server"
expect "numerek-firstboot.service enabled" test -L "$wants/numerek-firstboot.service"
expect "mosquitto not enabled (only a server runs it)" test ! -L "$wants/mosquitto.service"
for u in ssh systemd-networkd systemd-timesyncd avahi-daemon; do
  expect "$u enabled" sh -c "ls -d $r/etc/systemd/system/*.wants/$u.service"
done
expect "journal in RAM (Storage=volatile)" grep -q "^Storage=volatile" "$r/etc/systemd/journald.conf.d/60-numerek.conf"
expect "hardware watchdog: RuntimeWatchdogSec=14s" grep -q "^RuntimeWatchdogSec=14s" "$r/etc/systemd/system.conf.d/60-numerek-watchdog.conf"
expect "/tmp in RAM" grep -q "^tmpfs */tmp" "$r/etc/fstab"
expect "user numerek: system user, no login shell, home /var/lib/numerek" \
  grep -q '^numerek:x:[0-9]*:[0-9]*:[^:]*:/var/lib/numerek:/usr/sbin/nologin$' "$r/etc/passwd"
uid=$(awk -F: '$1=="numerek"{print $3}' "$r/etc/passwd")
[ -n "$uid" ] && [ "$uid" -lt 1000 ] && ok "numerek's uid $uid is a system uid" || bad "numerek has a system uid"
for g in gpio i2c video render input lp dialout audio; do
  expect "group $g exists" grep -q "^$g:" "$r/etc/group"
done
gid=$(awk -F: '$1=="numerek"{print $3}' "$r/etc/group")
expect "/etc/numerek is root:numerek 0750" test "$(owner_mode /etc/numerek)" = "0:$gid 750"
expect "/etc/numerek/numerek.toml is root:numerek 0640" test "$(owner_mode /etc/numerek/numerek.toml)" = "0:$gid 640"
expect "no broker account baked in (made at first boot)" \
  sh -c "! test -e $r/etc/mosquitto/numerek/devices.json && ! grep -q '^password' $r/etc/numerek/numerek.toml"
expect "no SSH host keys baked in" sh -c "! ls $r/etc/ssh/ssh_host_* 2>/dev/null | grep -q ."
expect "empty machine-id (made at first boot)" test ! -s "$r/etc/machine-id"
expect "root password locked" grep -q '^root:[!*]' "$r/etc/shadow"
expect "SSH: no password logins" grep -q "^PasswordAuthentication no" "$r/etc/ssh/sshd_config.d/60-numerek.conf"
expect "no SQLite database in the image" sh -c "! find $r/var/lib/numerek -name '*.db' 2>/dev/null | grep -q ."
expect "numerek-firstboot is executable" executable /usr/local/sbin/numerek-firstboot
if command -v systemd-analyze >/dev/null; then
  expect "numerek-firstboot.service passes systemd-analyze verify" \
    sh -c "systemd-analyze verify --root=$r numerek-firstboot.service 2>&1 | grep -v 'Cannot add dependency\|not found' | grep -q . && exit 1 || exit 0"
fi

if [ "$contents_only" = 1 ]; then
  if [ "$fails" = 0 ]; then echo "PASSED: every check of the contents held ($img; first boot not run)"; exit 0; fi
  echo "FAILED: $fails check(s)"; exit 1
fi

echo "== first boot, on a copy of the image (arm64 chroot; the card's boot partition as a folder)"
enable_binfmt
mkdir -p "$mnt"
cp --sparse=always "$img" "$work/copy.img"
mount -o loop,offset="$p2" "$work/copy.img" "$mnt"
mkdir -p "$work/boot"
MTOOLS_SKIP_CHECK=1 mcopy -s -i "$work/copy.img@@$p1" ::numerek-setup.example.toml "$work/boot/"
mount --bind "$work/boot" "$mnt/boot/firmware"; mounts+=("$mnt/boot/firmware")
mount -t proc proc "$mnt/proc"; mounts+=("$mnt/proc")
mount --bind /dev "$mnt/dev"; mounts+=("$mnt/dev")
mount -t tmpfs tmpfs "$mnt/tmp"; mounts+=("$mnt/tmp")
firstboot() { chroot "$mnt" /usr/bin/env -i PATH=$ROOT_PATH LANG=C.UTF-8 /usr/local/sbin/numerek-firstboot "$@"; }
# A broken file: refused, nothing changed.
printf 'role = "kiosk"\nhostname = "Kiosk_1"\nserver = "192.168.1.10"\n' > "$work/boot/numerek-setup.toml"
before=$(cd "$mnt" && find etc -newer "$mnt/etc/passwd" | sort | md5sum)
set +e; msg=$(firstboot 2>&1); rc=$?; set -e
[ "$rc" = 2 ] && echo "$msg" | grep -q "hostname 'Kiosk_1' is not a valid name" && ok "a broken setup is refused: $(echo "$msg" | head -1)" || bad "broken setup refused (rc $rc: $msg)"
[ "$(cd "$mnt" && find etc -newer "$mnt/etc/passwd" | sort | md5sum)" = "$before" ] && ok "and nothing was changed" || bad "the refused setup changed /etc"
# A kiosk, with the file numerek-provision makes on the server (made here by the image's own tool).
chroot "$mnt" /opt/numerek/venv/bin/numerek-provision --no-reload --broker-dir /tmp/broker --config-dir /tmp/devices init --host numerek-serwer.local >/dev/null
chroot "$mnt" /opt/numerek/venv/bin/numerek-provision --no-reload --broker-dir /tmp/broker --config-dir /tmp/devices add kiosk wejscie >/dev/null
cp "$mnt/tmp/devices/kiosk-wejscie.toml" "$work/boot/"
sed -e 's/^# ssh_authorized_key.*/ssh_authorized_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGl0IHRlc3Qga2V5IG9ubHkgZm9yIHRoZSBjaGVjawAA it@urzad"/' \
  "$work/boot/numerek-setup.example.toml" > "$work/boot/numerek-setup.toml"
set +e; msg=$(firstboot 2>&1); rc=$?; set -e
echo "$msg" | sed 's/^/    /'
[ "$rc" = 0 ] && ok "the example setup (a kiosk) is applied" || bad "the example setup was not applied (rc $rc)"
expect "numerek-kiosk.service enabled" test -L "$mnt/etc/systemd/system/multi-user.target.wants/numerek-kiosk.service"
expect "no other role enabled" sh -c "! ls $mnt/etc/systemd/system/multi-user.target.wants/ | grep -E 'numerek-(server|display|counter)|mosquitto'"
expect "/etc/numerek/kiosk.toml root:numerek 0640, broker 192.168.1.10" \
  sh -c "test \"\$(stat -c '%u:%g %a' $mnt/etc/numerek/kiosk.toml)\" = '0:$gid 640' && grep -q '^host = \"192.168.1.10\"' $mnt/etc/numerek/kiosk.toml"
expect "hostname kiosk-wejscie" grep -qx kiosk-wejscie "$mnt/etc/hostname"
expect "root's SSH key installed (0600)" test "$(stat -c %a "$mnt/root/.ssh/authorized_keys")" = 600
expect "the device file (a password) is gone from the boot partition" test ! -e "$work/boot/kiosk-wejscie.toml"
expect "setup renamed numerek-setup.done.toml (no second run)" sh -c "test -f $work/boot/numerek-setup.done.toml && ! test -e $work/boot/numerek-setup.toml"
expect "the kiosk accepts its installed config as user numerek" \
  chroot "$mnt" runuser -u numerek -- /opt/numerek/venv/bin/numerek-kiosk --config /etc/numerek/kiosk.toml --check
unmount_all
umount "$mnt"

if [ "$fails" = 0 ]; then echo "PASSED: every check held ($img)"; else echo "FAILED: $fails check(s)"; exit 1; fi
