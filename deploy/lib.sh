# Shared by deploy/arm64-check.sh and deploy/image/build-image.sh (sourced, not run):
# an emulated Debian bookworm arm64 root file system to run the project's install path in.
#
# Why one place: the check and the image must install Numerek the same way, from the same
# cached Debian base, so that what the check proves holds for what the image ships.

cache=${NUMEREK_ARM64_CACHE:-/var/cache/numerek-arm64}
mirror=${NUMEREK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
base_tar=$cache/$suite-arm64-base.tar.gz
# apt's .deb cache is locked by one apt at a time: the image build keeps its own, so that it
# can run while deploy/arm64-check.sh does.
apt_cache=${NUMEREK_APT_CACHE:-$cache/apt-archives}
ROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mounts=()

need_host_packages() {  # apt-get install whatever of "$@" is missing on this (x86) host
  local need=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "host: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

enable_binfmt() {  # qemu-aarch64 registered with the F flag: the emulator is found inside a chroot too
  need_host_packages qemu-user-static binfmt-support debootstrap file
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 2>/dev/null || true
  grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || { echo "binfmt_misc has no qemu-aarch64 entry with the F flag" >&2; return 1; }
}

make_base() {  # $1 = 1 to remake it; the debootstrap result, kept as a tarball in $cache
  mkdir -p "$cache/apt-archives/partial" "$cache/pip"
  if [ "${1:-0}" = 1 ] || [ ! -f "$base_tar" ]; then
    rm -rf "$cache/base.tmp"
    debootstrap --arch=arm64 --variant=minbase --cache-dir="$cache/apt-archives" \
      --include=systemd,systemd-sysv,udev,dbus,ca-certificates,python3,python3-venv,curl,procps,iproute2 \
      "$suite" "$cache/base.tmp" "$mirror" > "$cache/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/debootstrap.log" >&2; return 1; }
    tar -C "$cache/base.tmp" -czf "$base_tar.new" . && mv "$base_tar.new" "$base_tar"
    rm -rf "$cache/base.tmp"
  fi
}

unmount_all() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount -l "${mounts[$i]}" 2>/dev/null || true
  done
  mounts=()
}

_bind() { mkdir -p "$2"; mount --bind "$1" "$2"; mounts+=("$2"); }

new_root() {  # $1 = directory: a fresh copy of the base, with apt and pip caches shared between runs
  local root=$1 m
  for m in $(grep -o " $root/[^ ]*" /proc/mounts | sort -r); do umount -l "$m" || true; done
  rm -rf "$root"
  mkdir -p "$root"
  tar -C "$root" -xzf "$base_tar"
  cat > "$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main non-free-firmware
deb $mirror $suite-updates main non-free-firmware
deb http://deb.debian.org/debian-security $suite-security main non-free-firmware
EOF
  new_root_mounts_only "$root"
}

new_root_mounts_only() {  # $1 = an existing root: mounts, caches, the build's resolver and CA
  local root=$1 m
  for m in $(grep -o " $root/[^ ]*" /proc/mounts | sort -r); do umount -l "$m" || true; done
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # pip in the chroot trusts what this host trusts (a network may pass HTTPS through a proxy
  # with its own CA). Only the build's environment points at it; an image build removes it.
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/numerek-build-ca.pem"
  mount -t proc proc "$root/proc"; mounts+=("$root/proc")
  _bind /sys "$root/sys"
  _bind /dev "$root/dev"
  if mount -t devpts devpts "$root/dev/pts" -o newinstance,ptmxmode=0666 2>/dev/null; then mounts+=("$root/dev/pts"); fi
  mkdir -p "$apt_cache/partial"
  _bind "$apt_cache" "$root/var/cache/apt/archives"
  _bind "$cache/pip" "$root/root/.cache/pip"
  mount -t tmpfs tmpfs "$root/tmp"; mounts+=("$root/tmp")
  echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > "$root/etc/apt/apt.conf.d/10keep-debs"
  # Emulated dpkg is slow: no fsync per file while building (removed again from an image), and
  # no manuals or docs (as on most device images; copyright files stay).
  echo force-unsafe-io > "$root/etc/dpkg/dpkg.cfg.d/10numerek-build"
  printf '%s\n' 'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/doc/*' \
    'path-include=/usr/share/doc/*/copyright' > "$root/etc/dpkg/dpkg.cfg.d/20numerek-nodoc"
  [ "$(chroot "$root" uname -m)" = aarch64 ] || { echo "the chroot is not aarch64" >&2; return 1; }
}

copy_sources() {  # $1 = repo, $2 = target: tracked and new files, nothing git-ignored (as a clone has them)
  mkdir -p "$2"
  (cd "$1" && git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -x -C "$2"
}

in_root() {  # $1 = root, then a command: run in the chroot with a clean environment (no host pip settings)
  # DEBIAN_FRONTEND is set here: env -i drops the caller's, and debconf then falls back to
  # asking on the terminal (its Teletype frontend) in the middle of a build.
  local root=$1; shift
  chroot "$root" /usr/bin/env -i PATH=$ROOT_PATH HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    PIP_LOG=/var/log/numerek-pip.log PIP_NO_COLOR=1 PIP_CERT=/etc/ssl/numerek-build-ca.pem \
    SSL_CERT_FILE=/etc/ssl/numerek-build-ca.pem ${NUMEREK_ENV:-} "$@"
}

pip_report() {  # $1 = pip log, $2 = output dir, $3 = the root: binary wheels installed, and what was built
  local log=$1 dir=$2 root=$3
  # Each installed package's WHEEL file names the tag of the wheel it came from: a platform
  # tag (..._aarch64) is a binary wheel from PyPI, py3-none-any is pure Python.
  for w in "$root"/opt/numerek/releases/*/venv/lib/python3*/site-packages/*.dist-info/WHEEL; do
    printf '%s %s\n' "$(basename "$(dirname "$w")" .dist-info)" "$(sed -n 's/^Tag: //p' "$w" | head -1)"
  done | sort -u > "$dir/installed-wheels.txt"
  grep -v -- '-none-any$\| py3-none-any$\| py2.py3-none-any$' "$dir/installed-wheels.txt" > "$dir/aarch64-wheels.txt" || true
  grep -E "Created wheel for" "$log" | sed -E 's/.*Created wheel for ([^:]+): filename=([^ ]+).*/\1 \2/' \
    | sort -u > "$dir/built-from-source.txt" || true
  grep -E "(Building wheel for|Created wheel for)" "$log" > "$dir/source-build-times.txt" || true
  echo "binary (platform) wheels installed, none compiled here ($(wc -l < "$dir/aarch64-wheels.txt")):"
  sed 's/^/  /' "$dir/aarch64-wheels.txt"
  echo "built from source by pip ($(wc -l < "$dir/built-from-source.txt")):"
  sed 's/^/  /' "$dir/built-from-source.txt"
  sed 's/^/  /' "$dir/source-build-times.txt"
  # A source build that made a platform wheel ran a compiler: that is what must not happen.
  if grep -v -- '-py3-none-any.whl$' "$dir/built-from-source.txt" | grep -q .; then
    echo "FAILED: compiled from source instead of using an aarch64 wheel:" >&2
    grep -v -- '-py3-none-any.whl$' "$dir/built-from-source.txt" >&2
    return 1
  fi
  if grep -q -- '_x86_64\|win_amd64\|macosx' "$dir/aarch64-wheels.txt"; then
    echo "FAILED: a wheel for another platform was installed" >&2
    return 1
  fi
}
