#!/usr/bin/env bash
# Update and rollback on the arm64 chroot that deploy/arm64-check.sh set up and ran an office in.
# Run by arm64-check.sh (with root= and out= set); not meant to be run alone.
#
# A "next version" is the same sources with the next version number: numerek-release builds
# it next to the running one (arm64 venv, aarch64 wheels from pip's cache), checks this
# machine's configs with it, switches; the server of the new release must start on the
# office's database and still serve the ticket called before. Then numerek-release rollback,
# and the same again on the old release. Config and database must be unchanged throughout.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=deploy/lib.sh
. "$repo/deploy/lib.sh"
: "${root:?}" "${out:?}"

fingerprint() {  # config files as bytes; the database by its content (opening it may checkpoint its WAL)
  (cd "$root" && find etc/numerek etc/mosquitto/numerek -type f -print0 | sort -z | xargs -0 sha256sum)
  echo "$(in_root "$root" sqlite3 /var/lib/numerek/numerek.db .dump | sha256sum | cut -d' ' -f1)  numerek.db content"
}
serve() {  # $1 = label: broker + the current release's server in a private network namespace
  unshare --net --fork sh -c "ip link set lo up && exec chroot '$root' /usr/bin/env -i PATH=$ROOT_PATH HOME=/root \
    LANG=C.UTF-8 /opt/numerek/venv/bin/python /opt/numerek/src/deploy/arm64/inside.py --server-only \
    --out /var/tmp/numerek-check/$1"
}
current() { readlink "$root/opt/numerek/current"; }

before=$(current)
fingerprint > "$out/fingerprint-before.txt"
rm -rf "$root/tmp/src-next" && cp -a "$root/opt/numerek/src" "$root/tmp/src-next"
old_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/tmp/src-next/pyproject.toml")
sed -i "s/^version = \".*\"$/version = \"$old_version.post1\"/" "$root/tmp/src-next/pyproject.toml"

echo "== numerek-release install (running: $before)"
start=$(date +%s)
in_root "$root" numerek-release install /tmp/src-next
after=$(current)
echo "   built and switched in $(($(date +%s) - start)) s: $before -> $after"
[ "$after" != "$before" ] && [[ "$after" == releases/$old_version.post1-* ]] || { echo "FAILED: not switched" >&2; exit 1; }
[ "$(in_root "$root" /opt/numerek/venv/bin/python -c 'import importlib.metadata as m; print(m.version("numerek"))')" = "$old_version.post1" ]
fingerprint | diff "$out/fingerprint-before.txt" - || { echo "FAILED: the update changed config or data" >&2; exit 1; }
echo "   config and database unchanged"
ls "$root/var/lib/numerek/backups/" | grep "before-$old_version.post1" || { echo "FAILED: no database backup" >&2; exit 1; }
echo "   database copied to /var/lib/numerek/backups first"
serve after-update

echo "== numerek-release rollback"
in_root "$root" numerek-release rollback
[ "$(current)" = "$before" ] || { echo "FAILED: rollback did not go back to $before" >&2; exit 1; }
[ "$(in_root "$root" /opt/numerek/venv/bin/python -c 'import importlib.metadata as m; print(m.version("numerek"))')" = "$old_version" ]
serve after-rollback
fingerprint | diff "$out/fingerprint-before.txt" - >/dev/null || echo "   (the server wrote to its database while it ran, as it does)"
in_root "$root" numerek-release list
echo "PASSED: update to $old_version.post1 and rollback to $old_version on arm64"
