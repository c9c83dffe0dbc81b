#!/usr/bin/env bash
# Serves the test review app (dev/app-stub) inside the cluster as the source tarballs that the dev
# samples' spec.tarballUrl points at, so builds need neither GitHub nor S3:
#
#   http://source-server.review-build.svc/app-stub-<first 10 characters of the commit>.tar.gz
#
# One tarball per commit. Each has one top-level directory (as GitHub's /tarball/<sha> has; the
# build's unpack step strips it) and a VERSION file with the short commit, which the test app shows
# and records as its migration id: the operator passes no build arguments, so the commit has to
# travel in the source, as it would in a real tarball of that commit.
#
# Usage: dev/serve-source.sh [COMMIT...]   (40-hex commits; default: the two of the dev samples)
# Run it again after changing dev/app-stub; builds started afterwards get the new source.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=dev/lib.sh
. dev/lib.sh

require kubectl tar gzip

NAMESPACE="review-build"
CONFIGMAP="source-tarballs"

if [ "$#" -eq 0 ]; then
  set -- "${DEV_COMMITS[@]}"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/out"

step "packing dev/app-stub"
for commit in "$@"; do
  if [[ ! "$commit" =~ ^[0-9a-f]{40}$ ]]; then
    die "not a 40-character lowercase commit hash: '$commit'"
  fi
  short="${commit:0:10}"
  dir="app-stub-$short"
  mkdir "$work/$dir"
  cp -R dev/app-stub/. "$work/$dir/"
  rm -rf "$work/$dir/node_modules"
  printf '%s\n' "$short" >"$work/$dir/VERSION"
  # COPYFILE_DISABLE: no macOS resource-fork (._*) entries in the tarball.
  COPYFILE_DISABLE=1 tar -czf "$work/out/$dir.tar.gz" -C "$work" "$dir"
  info "$dir.tar.gz (VERSION $short)"
done

step "loading the tarballs into the ConfigMap $NAMESPACE/$CONFIGMAP"
# Server-side apply: a client-side apply would also copy the whole data into an annotation.
k create configmap "$CONFIGMAP" --namespace "$NAMESPACE" --from-file "$work/out" \
  --dry-run=client --output yaml |
  k apply --server-side --force-conflicts --field-manager review-app-operator-dev --filename -

step "starting the source server"
k apply --filename dev/resources/source-server.yaml
# Restart so that changed tarballs are served at once (a ConfigMap volume updates only lazily).
k --namespace "$NAMESPACE" rollout restart deployment/source-server
k --namespace "$NAMESPACE" rollout status deployment/source-server --timeout=180s
for commit in "$@"; do
  info "http://source-server.$NAMESPACE.svc/app-stub-${commit:0:10}.tar.gz"
done
