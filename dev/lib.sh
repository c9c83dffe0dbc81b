# shellcheck shell=bash
# Helpers shared by the dev scripts. Sourced by them (from the repository root), never run.

# The minikube profile, and the kubectl context minikube names after it. Every kubectl call of the
# dev scripts goes through `k`, so they never touch a cluster other than this minikube.
PROFILE="${MINIKUBE_PROFILE:-minikube}"
if [[ ! "$PROFILE" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]]; then
  printf 'error: MINIKUBE_PROFILE must be a plain profile name, got %q\n' "$PROFILE" >&2
  exit 1
fi

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# require TOOL...: stop unless every tool is on PATH.
require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed (see dev/README.md)"
  done
}

# kubectl, always against the minikube profile's context.
k() { kubectl --context "$PROFILE" "$@"; }

# minikube, always for the chosen profile.
mk() { minikube --profile "$PROFILE" "$@"; }

# retry ATTEMPTS DELAY COMMAND...: run COMMAND until it succeeds, at most ATTEMPTS times, DELAY
# seconds apart (for API objects whose webhooks or CRDs are still starting).
retry() {
  local attempts="$1" delay="$2" n=1
  shift 2
  until "$@"; do
    if [ "$n" -ge "$attempts" ]; then
      return 1
    fi
    info "not yet; retrying in ${delay}s ($n/$attempts)"
    sleep "$delay"
    n=$((n + 1))
  done
}

# The dev samples' commits: the ReviewApp is created at the first, `just patch-review-app` moves
# it to the second.
# shellcheck disable=SC2034 # used by the scripts that source this file
DEV_COMMITS=(
  c8c9aa334a76677aa0be4ec0ebb08484367f952d
  5ce6e4a15e2a09fe113aba79263104835bd676c2
)
