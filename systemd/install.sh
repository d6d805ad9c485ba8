#!/usr/bin/env bash
# Install one Numerek role on Raspberry Pi OS Bookworm or Debian 12 (arm64), from this source tree.
#
#   sudo systemd/install.sh server     # broker + queue server (one per office)
#   sudo systemd/install.sh kiosk      # touch screen + ticket printer
#   sudo systemd/install.sh display    # hall TV + loudspeaker
#   sudo systemd/install.sh counter    # buttons, LED and LCD at the counter(s)
#
# Idempotent. It never overwrites a config in /etc/numerek. Run it once per role (a machine
# may run several). The Python side is a release made by deploy/numerek-release
# (/opt/numerek/releases/<version>, /opt/numerek/current, rollback); updates go through that
# tool (docs/deployment.md, "Updating"). Step by step, with the reasons: docs/deployment.md.
#
# In a chroot or an image build (no running systemd, or NUMEREK_OFFLINE=1) it installs and
# enables everything but starts nothing; NUMEREK_HOST sets the broker address devices are
# given (default: <hostname>.local). NUMEREK_IMAGE=1 (deploy/image/build-image.sh) also
# leaves the server's broker accounts to the first boot.
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
release_tool=/usr/local/sbin/numerek-release

say() { printf '\n== %s\n' "$*"; }
# Talk to systemd and udev only on a running system: not in a chroot or an image build.
online() { [ "${NUMEREK_OFFLINE:-0}" != 1 ] && [ -d /run/systemd/system ]; }

say "system packages"
common=(python3 python3-venv python3-dev curl)
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
  counter) extra=(i2c-tools) ;;
esac
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# gpiozero's GPIO library: Raspberry Pi OS has python3-lgpio; Debian does not, and there
# numerek-release installs PyPI's lgpio wheel (aarch64, with its C library) into the venv.
if [ "$role" = counter ] && apt-cache show python3-lgpio >/dev/null 2>&1; then
  extra+=(python3-lgpio)
fi
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

say "Numerek release in $prefix/releases"
install -m 0755 "$src/deploy/numerek-release" "$release_tool"
mkdir -p "$prefix"
# A machine installed before releases had its venv at $venv: numerek-release moves it aside.
"$release_tool" add-role "$role"
NUMEREK_OFFLINE=$(online && echo 0 || echo 1) "$release_tool" install "$src"
ln -sfn "$venv/bin/numerek-provision" /usr/local/sbin/numerek-provision

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
  if [ "${NUMEREK_IMAGE:-0}" = 1 ]; then
    # An image is flashed onto many cards: each server makes its own accounts and passwords
    # at its first boot (numerek-firstboot), none is baked into the image.
    echo "image build: the broker accounts are made at first boot"
  elif [ ! -f /etc/mosquitto/numerek/devices.json ]; then
    # Devices reach the broker as <hostname>.local (avahi); change with: numerek-provision init --host ADDRESS
    "${provision[@]}" init --host "${NUMEREK_HOST:-$(hostname).local}"
  fi
  if [ "${NUMEREK_IMAGE:-0}" != 1 ] && ! "${provision[@]}" list | grep -q '^server '; then
    "${provision[@]}" add server --site-config "$conf"
  fi
  if online; then systemctl restart mosquitto.service; fi
fi

if [ "$role" = kiosk ]; then
  say "udev rule for USB ticket printers"
  install -m 0644 "$src/systemd/udev/60-numerek-printer.rules" /etc/udev/rules.d/60-numerek-printer.rules
  if online; then
    udevadm control --reload
    udevadm trigger --subsystem-match=usb
  fi
fi

if [ "$role" = counter ]; then
  say "GPIO and I2C for the buttons, LED and LCD"
  # Raspberry Pi OS gives /dev/gpiochip* and /dev/i2c-* to groups gpio and i2c by its own
  # udev rules; Debian leaves them to root. This rule does it on both.
  install -m 0644 "$src/systemd/udev/60-numerek-gpio.rules" /etc/udev/rules.d/60-numerek-gpio.rules
  if command -v raspi-config >/dev/null; then
    raspi-config nonint do_i2c 0
  else
    # Debian: the I2C bus on the header (dtparam, through raspi-firmware's config.txt) and /dev/i2c-*.
    echo i2c-dev > /etc/modules-load.d/numerek-i2c.conf
    custom=/etc/default/raspi-firmware-custom
    if [ -d /etc/default ] && ! grep -qs '^dtparam=i2c_arm=on' "$custom"; then
      echo 'dtparam=i2c_arm=on' >> "$custom"
      echo "added dtparam=i2c_arm=on to $custom (applied to config.txt by the next kernel or raspi-firmware update, or: dpkg-reconfigure raspi-firmware)"
    fi
  fi
  if online; then
    udevadm control --reload
    udevadm trigger --subsystem-match=gpio --subsystem-match=i2c-dev
  fi
fi

say "systemd unit numerek-$role.service"
# numerek-release installed the unit file of the current release.
systemctl enable "numerek-$role.service"
if ! online; then
  echo "enabled; not started (no running systemd here)"
elif [ -f "$conf" ]; then
  systemctl daemon-reload
  systemctl restart "numerek-$role.service"
  echo "started; follow it with: journalctl -u numerek-$role -f"
else
  echo "enabled, not started: put this device's config (from numerek-provision on the server) at $conf"
  echo "then: sudo chown root:numerek $conf && sudo chmod 0640 $conf"
  echo "      sudo -u numerek $venv/bin/numerek-$role --config $conf --check && sudo systemctl start numerek-$role"
fi
