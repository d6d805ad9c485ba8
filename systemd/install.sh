#!/usr/bin/env bash
# Install one Numerek role on Raspberry Pi OS Bookworm (64-bit), from this source tree.
#
#   sudo systemd/install.sh server     # broker + queue server (one per office)
#   sudo systemd/install.sh kiosk      # touch screen + ticket printer
#   sudo systemd/install.sh display    # hall TV + loudspeaker
#   sudo systemd/install.sh counter    # buttons, LED and LCD at the counter(s)
#
# Idempotent: run it again after `git pull` to update. It never overwrites a config in /etc/numerek.
# Step by step, with the reasons: docs/deployment.md.
set -euo pipefail

role=${1:-}
case "$role" in
  server|kiosk|display|counter) ;;
  *) echo "usage: sudo $0 server|kiosk|display|counter" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "run as root: sudo $0 $role" >&2; exit 1; }

src=$(cd "$(dirname "$0")/.." && pwd)
case "$src" in
  /home/*|/root/*)
    # The units run with ProtectHome=yes: code under /home is invisible to them.
    echo "put the Numerek sources outside /home, e.g.: sudo git clone <repo> /opt/numerek/src" >&2
    exit 1 ;;
esac
prefix=/opt/numerek
venv=$prefix/venv
etc=/etc/numerek

say() { printf '\n== %s\n' "$*"; }

say "system packages"
common=(python3 python3-venv python3-dev)
# The screen roles run Kivy on KMS/DRM, without X. Kivy's wheel brings its own SDL2 (with the
# kmsdrm video driver), which loads the graphics libraries only at run time (dlopen), so no
# package depends on them and a Lite image lacks them: EGL and GLES (libglvnd) with Mesa's
# EGL vendor (a Recommends, skipped by --no-install-recommends), GBM and DRM for KMS, Mesa's
# DRI drivers (vc4/v3d on the Pi), libGL for Kivy's default GL backend, mtdev for touch.
# The libsdl2-* packages are for a Kivy built from source against Debian's SDL2
# (docs/deployment.md, "Screen without a desktop").
screen=(fonts-dejavu-core libegl1 libegl-mesa0 libgles2 libgl1 libgl1-mesa-dri libgbm1 libdrm2 libmtdev1
        libsdl2-2.0-0 libsdl2-ttf-2.0-0 libsdl2-image-2.0-0 libsdl2-mixer-2.0-0)
case "$role" in
  server)  extra=(mosquitto mosquitto-clients sqlite3) ;;
  kiosk)   extra=("${screen[@]}" libusb-1.0-0) ;;
  display) extra=("${screen[@]}" espeak-ng alsa-utils sox) ;;  # sox converts a chime in another WAV format
  counter) extra=(python3-lgpio i2c-tools) ;;
esac
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${common[@]}" "${extra[@]}"

say "user numerek and device groups"
install -D -m 0644 "$src/systemd/sysusers.d/numerek.conf" /etc/sysusers.d/numerek.conf
systemd-sysusers /etc/sysusers.d/numerek.conf
# The units name these groups in SupplementaryGroups=; a unit does not start if one is missing
# (gpio and i2c exist on Raspberry Pi OS only; elsewhere an empty group is harmless).
case "$role" in
  kiosk)   groups=(video render input lp dialout) ;;
  display) groups=(video render audio) ;;
  counter) groups=(gpio i2c) ;;
  server)  groups=() ;;
esac
for g in "${groups[@]}"; do
  getent group "$g" >/dev/null || groupadd --system "$g"
done

say "Python environment in $venv"
mkdir -p "$prefix"
if [ ! -x "$venv/bin/python" ]; then
  if [ "$role" = counter ]; then
    # lgpio comes from Raspberry Pi OS (python3-lgpio), so the venv sees system packages.
    python3 -m venv --system-site-packages "$venv"
  else
    python3 -m venv "$venv"
  fi
fi
"$venv/bin/pip" install -q --upgrade pip
# Editable: the roles' examples and sounds are read from the source tree, and an update is `git pull`.
"$venv/bin/pip" install -q -e "$src[$role]"
# The services cannot write bytecode next to the sources (ProtectSystem=strict): compile it now.
"$venv/bin/python" -m compileall -q "$src/protocol" "$src/server" "$src/kiosk" "$src/display" "$src/counter" "$src/hardware" || true

say "configuration in $etc"
install -d -m 0750 -o root -g numerek "$etc"
case "$role" in
  server)  conf=$etc/numerek.toml; example=$src/server/examples/county_office.toml ;;
  *)       conf=$etc/$role.toml; example= ;;
esac
if [ ! -f "$conf" ] && [ -n "$example" ]; then
  install -m 0640 -o root -g numerek "$example" "$conf"
  echo "copied the example office to $conf: edit it (services, counters, hours) before opening"
fi

if [ "$role" = server ]; then
  say "Mosquitto: closed broker"
  install -m 0644 "$src/systemd/mosquitto/numerek.conf" /etc/mosquitto/conf.d/numerek.conf
  install -d -m 0750 -o root -g mosquitto /etc/mosquitto/numerek
  provision=("$venv/bin/numerek-provision" --no-reload)
  if [ ! -f /etc/mosquitto/numerek/devices.json ]; then
    # Devices reach the broker as <hostname>.local (avahi); change with: numerek-provision init --host ADDRESS
    "${provision[@]}" init --host "$(hostname).local"
  fi
  if ! "${provision[@]}" list | grep -q '^server '; then
    "${provision[@]}" add server --site-config "$conf"
  fi
  systemctl restart mosquitto.service
  ln -sfn "$venv/bin/numerek-provision" /usr/local/sbin/numerek-provision
fi

if [ "$role" = kiosk ]; then
  say "udev rule for USB ticket printers"
  install -m 0644 "$src/systemd/udev/60-numerek-printer.rules" /etc/udev/rules.d/60-numerek-printer.rules
  udevadm control --reload
  udevadm trigger --subsystem-match=usb
fi

if [ "$role" = counter ]; then
  say "I2C for the LCD"
  command -v raspi-config >/dev/null && raspi-config nonint do_i2c 0 || echo "enable I2C yourself (dtparam=i2c_arm=on)"
fi

say "systemd unit numerek-$role.service"
install -m 0644 "$src/systemd/numerek-$role.service" /etc/systemd/system/
systemctl daemon-reload
systemctl enable "numerek-$role.service"
if [ -f "$conf" ]; then
  systemctl restart "numerek-$role.service"
  echo "started; follow it with: journalctl -u numerek-$role -f"
else
  echo "enabled, not started: put this device's config (from numerek-provision on the server) at $conf"
  echo "then: sudo chown root:numerek $conf && sudo chmod 0640 $conf"
  echo "      sudo -u numerek $venv/bin/numerek-$role --config $conf --check && sudo systemctl start numerek-$role"
fi
