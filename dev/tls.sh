#!/usr/bin/env bash
# A throw-away certificate authority and a *.review.local certificate it signs, installed as the
# wildcard TLS Secret default/star-review-local-tls that the dev configuration copies next to
# every review app (tls.secretName / tls.secretNamespace).
#
# The CA is made once and kept in dev/tls/ (git-ignored), so it only has to be trusted once; the
# *.review.local certificate is signed anew on every run. Delete dev/tls/ to start over.
#
# Usage: dev/tls.sh            (run by dev/up.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=dev/lib.sh
. dev/lib.sh

require openssl kubectl

DIR="dev/tls"
DOMAIN="review.local"
SECRET="star-review-local-tls"
SECRET_NAMESPACE="default"

umask 077
mkdir -p "$DIR"

if [ ! -s "$DIR/ca.crt" ] || [ ! -s "$DIR/ca.key" ]; then
  step "creating a throw-away dev CA in $DIR/"
  cat >"$DIR/ca.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca

[dn]
O = review-app-operator dev
CN = review-app-operator dev CA

[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
  openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 \
    -config "$DIR/ca.cnf" -keyout "$DIR/ca.key" -out "$DIR/ca.crt"
  rm -f "$DIR/ca.cnf"
fi
chmod 644 "$DIR/ca.crt" # the certificate is public; ca.key stays private

step "signing a certificate for *.$DOMAIN"
cat >"$DIR/leaf.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no

[dn]
O = review-app-operator dev
CN = *.$DOMAIN

[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:*.$DOMAIN, DNS:$DOMAIN
authorityKeyIdentifier = keyid, issuer
subjectKeyIdentifier = hash
CNF
openssl req -new -nodes -newkey rsa:2048 -sha256 \
  -config "$DIR/leaf.cnf" -keyout "$DIR/tls.key" -out "$DIR/tls.csr"
# 365 days: browsers reject longer-lived server certificates.
openssl x509 -req -sha256 -days 365 -in "$DIR/tls.csr" \
  -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -CAcreateserial \
  -extfile "$DIR/leaf.cnf" -extensions leaf -out "$DIR/tls.crt"
openssl verify -CAfile "$DIR/ca.crt" "$DIR/tls.crt" >/dev/null

step "installing it as the Secret $SECRET_NAMESPACE/$SECRET"
k create secret tls "$SECRET" --namespace "$SECRET_NAMESPACE" \
  --cert "$DIR/tls.crt" --key "$DIR/tls.key" --dry-run=client --output yaml |
  k apply --server-side --force-conflicts --field-manager review-app-operator-dev --filename -
# The Secret holds the leaf now; only the CA (to sign the next one) stays on disk.
rm -f "$DIR/tls.key" "$DIR/tls.csr" "$DIR/tls.crt" "$DIR/leaf.cnf"

info "CA certificate: $PWD/$DIR/ca.crt"
info "Trust it once to browse https://<app>.$DOMAIN without warnings, for example:"
info "  Firefox: Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import"
info "  macOS:   sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain $DIR/ca.crt"
info "  Debian/Ubuntu: sudo cp $DIR/ca.crt /usr/local/share/ca-certificates/review-app-operator-dev.crt && sudo update-ca-certificates"
