#!/usr/bin/env bash
# The NATS server's TLS certificate, made where it is deployed (never
# committed, never in an image):
#
#   deployments/tls/make-certs.sh DIR NAME [NAME...]
#
# writes into DIR
#   ca.pem           a new CA certificate: what the services trust (--nats-ca)
#   server-cert.pem  the server's certificate, signed by that CA, for the
#                    DNS names / IP addresses NAME... (subjectAltName),
#                    usable for both ends of a TLS connection (serverAuth
#                    and clientAuth: NATS cluster routes dial each other
#                    with it)
#   server-key.pem   its private key (mode 0400)
# The CA's private key is thrown away once it has signed: nobody can mint
# another certificate the services would trust. To add a name, run it again
# (a new CA) and restart everything.
#
# ECDSA P-256, valid 365 days (RINGWISE_CERT_DAYS). Needs openssl.
set -euo pipefail

log() { echo "make-certs: $*" >&2; }

[ $# -ge 2 ] || {
	echo "usage: $0 DIR NAME [NAME...]   (NAME: a DNS name, *.wildcard, or an IP address)" >&2
	exit 2
}
dir=$1
shift
days=${RINGWISE_CERT_DAYS:-365}
command -v openssl >/dev/null 2>&1 || {
	log "installing openssl"
	DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 update >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get -qq -y -o DPkg::Lock::Timeout=300 install openssl >/dev/null
}

san=""
for n in "$@"; do
	if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
san=${san%,}

mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(
	umask 077
	openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ca-key.pem"
	openssl req -x509 -new -key "$tmp/ca-key.pem" -sha256 -days "$days" -subj "/CN=ringwise NATS CA" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$tmp/ca.pem" 2>/dev/null
	openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/server-key.pem"
	openssl req -new -key "$tmp/server-key.pem" -subj "/CN=$1" -out "$tmp/server.csr" 2>/dev/null
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$san" >"$tmp/ext"
	openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" -CAcreateserial \
		-days "$days" -sha256 -extfile "$tmp/ext" -out "$tmp/server-cert.pem" 2>/dev/null
)
openssl verify -CAfile "$tmp/ca.pem" "$tmp/server-cert.pem" >/dev/null
install -m 0444 "$tmp/ca.pem" "$dir/ca.pem"
install -m 0444 "$tmp/server-cert.pem" "$dir/server-cert.pem"
install -m 0400 "$tmp/server-key.pem" "$dir/server-key.pem"
log "wrote $dir/{ca.pem,server-cert.pem,server-key.pem} for $san (valid $days days; CA key discarded)"
