#!/usr/bin/env bash
# `just dev-up`: from a laptop with minikube and kubectl to the operator running on minikube,
# ready for `just create-review-app`. Every step converges, so running it again is safe (and is
# how a changed operator is redeployed).
#
# 1. minikube (started with the docker runtime unless it runs already), the ingress and registry
#    addons;
# 2. a throw-away dev CA and the wildcard TLS Secret default/star-review-local-tls (dev/tls.sh);
# 3. CloudNativePG, the build namespace review-build with its push Secret, the app namespace
#    test-review-app with the sample ConfigMaps and Secrets, and the source database
#    database-source (a CNPG Cluster);
# 4. the source server that serves the test app's tarballs (dev/serve-source.sh);
# 5. the dev BuildKit image and the operator image, built inside minikube;
# 6. the operator (`kubectl apply -k dev/overlay`).
#
# Needs minikube, kubectl, openssl, tar and gzip. Optional environment:
#   MINIKUBE_PROFILE  minikube profile and kubectl context (default minikube)
#   MINIKUBE_CPUS, MINIKUBE_MEMORY  size of a cluster started here (default 4 and 6g)
#   CNPG_MANIFEST     CloudNativePG release manifest to install (default: the pinned one below)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=dev/lib.sh
. dev/lib.sh

require minikube kubectl openssl tar gzip

CNPG_MANIFEST="${CNPG_MANIFEST:-https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/release-1.30/releases/cnpg-1.30.0.yaml}"
APP_HOST="test-review-app-678.review.local"

step "minikube (profile $PROFILE)"
if mk status >/dev/null 2>&1; then
  info "already running"
else
  mk start --container-runtime=docker \
    --cpus="${MINIKUBE_CPUS:-4}" --memory="${MINIKUBE_MEMORY:-6g}"
fi
# The registry set-up below relies on the node's Docker: minikube lets it pull over plain HTTP
# from the Service CIDR, where the registry addon's ClusterIP is.
runtime="$(k get nodes --output jsonpath='{.items[0].status.nodeInfo.containerRuntimeVersion}')"
case "$runtime" in
  docker://*) ;;
  *) die "minikube runs '$runtime'; the dev set-up needs the docker runtime (minikube delete, then run this again)" ;;
esac

step "addons: ingress and registry"
mk addons enable ingress
mk addons enable registry
k --namespace ingress-nginx rollout status deployment/ingress-nginx-controller --timeout=300s
# The registry pod (a Deployment since minikube 1.34, a ReplicationController before); retried
# because `kubectl wait` fails while no pod exists yet.
retry 30 5 k --namespace kube-system wait --for=condition=Ready pod \
  --selector actual-registry=true --timeout=300s
registry_host="$(k --namespace kube-system get service registry --output jsonpath='{.spec.clusterIP}')"
if [[ ! "$registry_host" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
  die "unexpected ClusterIP of the Service kube-system/registry: '$registry_host'"
fi
info "images go to $registry_host (the registry addon, plain HTTP on port 80)"

step "dev TLS"
dev/tls.sh

step "CloudNativePG ($CNPG_MANIFEST)"
k apply --server-side --force-conflicts --filename "$CNPG_MANIFEST"
k --namespace cnpg-system rollout status deployment/cnpg-controller-manager --timeout=300s

step "build namespace review-build, app namespace test-review-app"
k apply --filename dev/resources/build-namespace.yaml
k apply --filename dev/resources/app-config.yaml

step "source database test-review-app/database-source"
# Made once: the password must stay the one the database was initialised with.
# (The password goes through a private file, never a command line.)
if ! k --namespace test-review-app get secret database-source-auth >/dev/null 2>&1; then
  secret_dir="$(mktemp -d)"
  (umask 077 && openssl rand -hex 16 >"$secret_dir/password")
  k --namespace test-review-app create secret generic database-source-auth \
    --type kubernetes.io/basic-auth \
    --from-literal username=app \
    --from-file password="$secret_dir/password" \
    --from-file POSTGRES_PASSWORD="$secret_dir/password"
  rm -rf "$secret_dir"
fi
# CNPG's admission webhook answers a little after its Deployment is available.
retry 30 5 k apply --filename dev/resources/database-source.yaml

step "source server"
dev/serve-source.sh

step "operator image review-app-operator:dev (inside minikube; the first build takes minutes)"
mk image build --tag review-app-operator:dev .

step "operator"
k apply --filename deploy/namespace.yaml
# What the dev overlay passes as REVIEWAPP_REGISTRY.
k --namespace review-app-operator create configmap review-app-operator-dev \
  --from-literal registry="$registry_host" --dry-run=client --output yaml |
  k apply --filename -
k apply --kustomize dev/overlay
# The image tag stays `dev` and the configuration is read once: restart to pick up both.
k --namespace review-app-operator rollout restart deployment/review-app-operator
k --namespace review-app-operator rollout status deployment/review-app-operator --timeout=300s

step "waiting for the source database"
k --namespace test-review-app wait --for=condition=Ready cluster/database-source --timeout=600s

minikube_ip="$(mk ip)"
step "ready"
info "1. Point the app's name at minikube (these scripts never edit /etc/hosts). Add this line to /etc/hosts:"
info ""
info "     $minikube_ip $APP_HOST"
info ""
info "   (macOS or Windows with the docker driver: run 'minikube tunnel' and use 127.0.0.1 instead.)"
info "2. Trust the dev CA $PWD/dev/tls/ca.crt in your browser (see above)."
info "3. just create-review-app   build commit c8c9aa334a and deploy it (a few minutes);"
info "                            watch: kubectl get reviewapp test --watch"
info "                            then open https://$APP_HOST"
info "4. just patch-review-app    a new commit (5ce6e4a15e): rebuilt while the old version serves,"
info "                            then a new row in the migrations table"
info "5. just delete-review-app   the operator tears everything down"
info ""
info "Operator logs: kubectl --context $PROFILE --namespace review-app-operator logs deployment/review-app-operator --follow"
info "Undo all this: just dev-down (or just dev-down --purge to delete the cluster)"
