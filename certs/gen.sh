#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# certs/gen.sh [OUTDIR]: a throwaway test PKI for warden. FOR DEVELOPMENT AND TESTS ONLY:
# the keys are unencrypted, valid for 30 days, and generated on whatever machine runs this.
# Never use them for a real deployment.
#
# Writes into OUTDIR (default: the directory holding this script):
#   ca.pem, ca.key                  test CA ("warden-test-ca")
#   server.pem, server.key          server cert, CN=localhost, SAN DNS:localhost, IP:127.0.0.1,
#                                   extendedKeyUsage serverAuth, signed by ca
#   client.pem, client.key          client cert, CN=client-1, extendedKeyUsage clientAuth,
#                                   signed by ca (for mutual TLS: tls_client_ca ca.pem)
#   other-ca.pem, other-ca.key      an unrelated CA ("warden-other-ca")
#   other-client.pem, other-client.key
#                                   client cert CN=client-other signed by other-ca (must be
#                                   refused by a warden that trusts only ca.pem)
#
# Keys are RSA 2048 (what gRPC 1.51 and EMQX's Erlang ssl both accept everywhere).
# Needs only openssl (1.1.1 or 3.x) and a POSIX sh.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
mkdir -p "$out"
out=$(cd "$out" && pwd)

days=30
work=$(mktemp -d "${TMPDIR:-/tmp}/warden-certs.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
umask 077

# key + self-signed CA certificate: mkca NAME CN
mkca() {
    cat >"$work/$1.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = $2
O = warden test PKI
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -sha256 \
        -config "$work/$1.cnf" -keyout "$out/$1.key" -out "$out/$1.pem" 2>/dev/null
}

# key + CSR + certificate signed by a CA: mkleaf NAME CN CA EXTENSIONS...
mkleaf() {
    name=$1 cn=$2 ca=$3
    shift 3
    {
        echo "basicConstraints = critical, CA:FALSE"
        echo "keyUsage = critical, digitalSignature, keyEncipherment"
        echo "subjectKeyIdentifier = hash"
        echo "authorityKeyIdentifier = keyid"
        for ext in "$@"; do echo "$ext"; done
    } >"$work/$name.ext"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn/O=warden test PKI" \
        -keyout "$out/$name.key" -out "$work/$name.csr" 2>/dev/null
    # random 64-bit serial: no .srl file left behind
    serial=0x$(openssl rand -hex 8)
    openssl x509 -req -in "$work/$name.csr" -CA "$out/$ca.pem" -CAkey "$out/$ca.key" \
        -set_serial "$serial" -days "$days" -sha256 -extfile "$work/$name.ext" \
        -out "$out/$name.pem" 2>/dev/null
}

mkca ca "warden-test-ca"
mkleaf server localhost ca \
    "subjectAltName = DNS:localhost, IP:127.0.0.1" \
    "extendedKeyUsage = serverAuth"
mkleaf client client-1 ca "extendedKeyUsage = clientAuth"

mkca other-ca "warden-other-ca"
mkleaf other-client client-other other-ca "extendedKeyUsage = clientAuth"

# certificates are public; keys stay 0600 (umask above)
chmod 644 "$out/ca.pem" "$out/server.pem" "$out/client.pem" "$out/other-ca.pem" \
    "$out/other-client.pem"

openssl verify -CAfile "$out/ca.pem" "$out/server.pem" "$out/client.pem" >/dev/null
openssl verify -CAfile "$out/other-ca.pem" "$out/other-client.pem" >/dev/null
echo "certs/gen.sh: wrote test PKI to $out (dev/test only, valid $days days)"
