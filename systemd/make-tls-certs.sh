#!/usr/bin/env bash
# Create a private certificate authority for the office and a certificate for the broker.
#
#   sudo systemd/make-tls-certs.sh numerek-serwer.local [192.168.1.10] [OUTDIR]
#
# Writes into OUTDIR (default /etc/mosquitto/certs):
#   numerek-ca.crt      the CA certificate: copy it to every device as /etc/numerek/ca.crt
#   numerek-ca.key      the CA key: keep it offline (USB stick in the office safe), not on the Pi
#   numerek-broker.crt  the broker's certificate (valid for the host name and address given)
#   numerek-broker.key  its key, readable by the mosquitto group only
# Devices check the broker's certificate against the CA and the host name they connect to,
# so the name (or address) in their config must be one of those given here.
# Keys are ECDSA P-256: as strong as RSA-3072 (128-bit security), made in milliseconds where an
# RSA-3072 key takes seconds of CPU (tens of seconds on a Raspberry Pi), with smaller handshakes.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 HOSTNAME [IP-ADDRESS] [OUTDIR]" >&2
  exit 2
fi
host=$1
ip=${2:-}
out=${3:-/etc/mosquitto/certs}
days=3650
umask 077
mkdir -p "$out"
cd "$out"
san="DNS:${host}"
[ -n "$ip" ] && san="${san},IP:${ip}"

if [ ! -f numerek-ca.key ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -nodes -days "$days" \
    -subj "/O=Numerek/CN=Numerek office CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout numerek-ca.key -out numerek-ca.crt 2>/dev/null
fi
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -nodes -subj "/O=Numerek/CN=${host}" \
  -keyout numerek-broker.key -out numerek-broker.csr 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
  "$san" > numerek-broker.ext
openssl x509 -req -in numerek-broker.csr -CA numerek-ca.crt -CAkey numerek-ca.key -CAcreateserial \
  -days "$days" -sha256 -extfile numerek-broker.ext -out numerek-broker.crt 2>/dev/null
rm -f numerek-broker.csr numerek-broker.ext
chmod 0644 numerek-ca.crt numerek-broker.crt
if getent group mosquitto >/dev/null && [ "$(id -u)" = 0 ]; then
  chgrp mosquitto numerek-broker.key
  chmod 0640 numerek-broker.key
fi
echo "CA: $out/numerek-ca.crt  broker: $out/numerek-broker.crt (for ${san})"
