#!/usr/bin/env bash
# Numerek on arm64, under emulation: every role installed and run as on a Raspberry Pi.
#
#   sudo nice -n 19 deploy/arm64-check.sh            # about an hour on 2 shared cores (docs/deployment.md)
#   sudo deploy/arm64-check.sh --fresh-base          # also remake the cached Debian root file system
#   sudo NUMEREK_ARM64_REUSE=1 deploy/arm64-check.sh # reuse the last run's root (working on the check)
#     (and NUMEREK_ARM64_SKIP_INSTALL=1: only the office and the update/rollback again)
#
# What it does, on an x86 Debian 12 host (root):
#  1. qemu-user-static + binfmt_misc (F flag: the emulator is found inside a chroot too);
#  2. a Debian bookworm arm64 root file system from debootstrap, cached as a tarball in
#     $NUMEREK_ARM64_CACHE (default /var/cache/numerek-arm64, outside git) with apt's .deb
#     files and pip's downloads, so a re-run skips the downloads; every run starts from
#     a fresh copy of it;
#  3. the project's own install path in a chroot, as a Pi would run it:
#     systemd/install.sh server, kiosk, display, counter (pip's log kept: which packages
#     came as aarch64 wheels and which had to be built);
#  4. deploy/arm64/inside.py in a network namespace of its own: broker, server (/health,
#     READY=1), kiosk and display on Xvfb (screenshots), counter on mock pins, a ticket taken
#     at the kiosk and called at the counter;
#  5. numerek-release: an update to a new version and a rollback, config and data kept.
# Results (logs, screenshots, timings) go to build/arm64/ (git-ignored). Exit 0 = all passed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/lib.sh
. "$repo/deploy/lib.sh"
out=${NUMEREK_ARM64_OUT:-$repo/build/arm64}
root=$cache/check-root
fresh_base=0
[ "${1:-}" = --fresh-base ] && fresh_base=1
[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, chroot, mounts): sudo $0" >&2; exit 1; }

t_start=$(date +%s)
[ "${NUMEREK_ARM64_REUSE:-0}" = 1 ] || rm -rf "$out"
rm -rf "$out/office"
mkdir -p "$out"
timings=$out/timings.txt
: > "$timings"
step_t=$t_start
step() {  # step NAME: close the previous step's timing, print a heading
  local now; now=$(date +%s)
  [ -n "${step_name:-}" ] && printf '%-48s %5ds\n' "$step_name" $((now - step_t)) | tee -a "$timings"
  step_name=$1; step_t=$now
  printf '\n=== %s\n' "$1"
}
trap unmount_all EXIT

step "host: qemu-user-static, binfmt_misc"
need_host_packages iproute2 util-linux
enable_binfmt
grep -E '^(interpreter|flags)' /proc/sys/fs/binfmt_misc/qemu-aarch64

if [ "$fresh_base" = 1 ] || [ ! -f "$base_tar" ]; then
  step "debootstrap bookworm arm64 (cached afterwards)"
  make_base 1
fi

if [ "${NUMEREK_ARM64_REUSE:-0}" = 1 ] && [ -d "$root/opt/numerek" ]; then
  # For working on this script: the last run's root, install.sh run again over it (it is idempotent).
  step "the last run's root file system (NUMEREK_ARM64_REUSE=1)"
  new_root_mounts_only "$root"
  rm -rf "$root/opt/numerek/src" "$root/var/tmp/numerek-check" "$root"/var/lib/numerek/numerek.db*
else
  step "fresh root file system from the cached base"
  new_root "$root"
fi
echo numerek-arm64 > "$root/etc/hostname"
copy_sources "$repo" "$root/opt/numerek/src"
echo "chroot: Debian $(cat "$root/etc/debian_version"), $(chroot "$root" python3 -c 'import platform; print(platform.machine(), "Python", platform.python_version())')"

export NUMEREK_ENV="NUMEREK_HOST=127.0.0.1"
roles="server kiosk display counter"
# NUMEREK_ARM64_SKIP_INSTALL=1 (with NUMEREK_ARM64_REUSE=1): only the office and the update again.
[ "${NUMEREK_ARM64_SKIP_INSTALL:-0}" = 1 ] && [ "${NUMEREK_ARM64_REUSE:-0}" = 1 ] && roles=""
for role in $roles; do
  step "install.sh $role (in the arm64 chroot)"
  in_root "$root" /opt/numerek/src/systemd/install.sh "$role" > "$out/install-$role.log" 2>&1 \
    || { tail -40 "$out/install-$role.log"; echo "install.sh $role FAILED (log: $out/install-$role.log)" >&2; exit 1; }
  tail -2 "$out/install-$role.log"
done

step "test tools in the chroot (Xvfb, xdotool)"
in_root "$root" apt-get install -y -qq --no-install-recommends xvfb xauth xdotool > "$out/test-tools.log" 2>&1 \
  || { tail -20 "$out/test-tools.log"; exit 1; }

step "pip: aarch64 wheels or source builds?"
cp "$root/var/log/numerek-pip.log" "$out/pip.log"
pip_report "$out/pip.log" "$out" "$root"

step "the office on arm64 (network namespace of its own)"
check_dir=/var/tmp/numerek-check
set +e
unshare --net --fork sh -c "ip link set lo up && exec chroot '$root' /usr/bin/env -i PATH=$ROOT_PATH HOME=/root \
  LANG=C.UTF-8 /opt/numerek/venv/bin/python /opt/numerek/src/deploy/arm64/inside.py --out $check_dir" 2>&1 \
  | tee "$out/office.log"
status=${PIPESTATUS[0]}
set -e
mkdir -p "$out/office" && cp -r "$root$check_dir/." "$out/office/" || true
[ "$status" = 0 ] || { echo "the office on arm64 FAILED (log: $out/office.log)" >&2; exit 1; }

if [ -x "$repo/deploy/arm64/update-check.sh" ]; then
  step "update and rollback (numerek-release)"
  set +e
  root=$root out=$out "$repo/deploy/arm64/update-check.sh" 2>&1 | tee "$out/update.log"
  status=${PIPESTATUS[0]}
  set -e
  [ "$status" = 0 ] || { echo "update/rollback FAILED (log: $out/update.log)" >&2; exit 1; }
fi

step "done"
total=$(( $(date +%s) - t_start ))
printf '%-48s %5ds\n' "total" "$total" | tee -a "$timings"
echo "PASSED in $((total / 60)) min $((total % 60)) s: every role installed and ran on arm64 (results: $out)"
