#!/usr/bin/env bash
# `just dev-down`: undo `just dev-up`. Deletes every ReviewApp (the operator tears each one down
# while it still runs), uninstalls the operator, and removes the dev namespaces, the source server
# and the wildcard TLS Secret. CloudNativePG, the addons, the cluster and dev/tls/ca.crt stay, so
# the next dev-up is quick and the CA stays trusted.
#
# Usage: dev/down.sh [--purge]
#   --purge   delete the whole minikube cluster instead (minikube delete): nothing is left.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=dev/lib.sh
. dev/lib.sh

usage() { printf 'usage: dev/down.sh [--purge]\n'; }

purge=false
for arg in "$@"; do
  case "$arg" in
    --purge) purge=true ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      die "unknown argument: '$arg'"
      ;;
  esac
done

require minikube kubectl

if [ "$purge" = true ]; then
  step "deleting the minikube cluster (profile $PROFILE)"
  mk delete
  exit 0
fi

if ! mk status >/dev/null 2>&1; then
  info "minikube (profile $PROFILE) is not running: nothing to undo"
  exit 0
fi

step "deleting every ReviewApp"
if k get customresourcedefinition reviewapps.reviewtron.k8s.revelry.co >/dev/null 2>&1; then
  if ! k delete reviewapps --all --wait=true --timeout=180s; then
    # The operator is not running (or stuck): drop its finalizer so the delete completes; the
    # children still go, through their owner references.
    info "the operator did not finish the teardown; removing its finalizer"
    k get reviewapps --output name | while read -r app; do
      k patch "$app" --type=json \
        --patch '[{"op": "remove", "path": "/metadata/finalizers"}]' || true
    done
    k delete reviewapps --all --wait=true --timeout=60s
  fi
fi

step "uninstalling the operator"
k delete --kustomize dev/overlay --ignore-not-found --wait=true

step "removing the dev resources"
k delete --filename dev/resources/source-server.yaml --ignore-not-found
k delete namespace test-review-app review-build --ignore-not-found --wait=true
k --namespace default delete secret star-review-local-tls --ignore-not-found

info "Kept: CloudNativePG, the ingress and registry addons, the cluster and $PWD/dev/tls/."
info "dev/down.sh --purge deletes the cluster."
