# review-app-operator: developer commands. `just --list` shows them.

# Run every test (the same command CI runs).
test:
    cargo test --workspace

# Format check and clippy with warnings as errors.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# Regenerate deploy/crd.yaml from the Rust types (a test fails when it is stale).
crd:
    cargo run -q -p review-app-operator -- crd > deploy/crd.yaml

# Print what the operator would apply for a ReviewApp file (default: the original operator's sample).
plan file="dev/samples/reviewapp.yaml" *args="":
    cargo run -q -p review-app-operator -- plan -f {{file}} {{args}}

# Build the operator image with docker (the Dockerfile at the repository root; the operator without the `demo` feature).
[positional-arguments]
image tag="review-app-operator:dev":
    docker build --tag "$1" .

# Install the operator on the current kubectl context: CRD, RBAC, ConfigMap, Deployment (edit deploy/configmap.yaml first).
install:
    kubectl apply --kustomize deploy/

# Watch the real operator handle the sample ReviewApp against an in-process Kubernetes API (no cluster).
demo:
    cargo run -q -p review-app-operator -- demo

# Start minikube and install everything the dev loop needs, operator included (dev/up.sh; safe to re-run).
dev-up:
    dev/up.sh

# Undo dev-up; `just dev-down --purge` deletes the whole minikube cluster instead.
[positional-arguments]
dev-down *args:
    dev/down.sh "$@"

# Create the dev sample ReviewApp (commit c8c9aa334a): a build, then https://test-review-app-678.review.local.
create-review-app:
    kubectl --context "${MINIKUBE_PROFILE:-minikube}" apply --filename dev/samples/reviewapp-dev.yaml

# Push a new commit (5ce6e4a15e) to the dev sample: rebuilt while the old version serves, then deployed.
patch-review-app:
    kubectl --context "${MINIKUBE_PROFILE:-minikube}" patch reviewapp test --type=merge --patch '{"spec": {"commitHash": "5ce6e4a15e2a09fe113aba79263104835bd676c2", "tarballUrl": "http://source-server.review-build.svc/app-stub-5ce6e4a15e.tar.gz"}}'

# Delete the dev sample ReviewApp: the operator tears down everything it created for it.
delete-review-app:
    kubectl --context "${MINIKUBE_PROFILE:-minikube}" delete reviewapp test --ignore-not-found

# Benchmarks: release builds, then the real operator (a child process) against the in-process API emulator at N = 10, 100, 1000 ReviewApps (a markdown table on stdout; docs/benchmarks.md), then the webhook path with the GitHub component (docs/benchmarks.md), then the criterion bench of transition + render.
bench:
    cargo build --release -p review-app-operator -p reviewapp-bench
    target/release/reviewapp-bench --apps 10,100,1000
    target/release/reviewapp-bench-github --pull-requests 200
    cargo bench -p reviewapp-bench --bench transition

# Failover benchmark: two replicas with leader election (default timings) against the emulator; the leader killed, then API outages (docs/benchmarks.md#failover).
bench-failover:
    cargo build --release -p review-app-operator -p reviewapp-bench
    target/release/reviewapp-bench --failover --apps 10 --failover-runs 6

# Activator benchmark: a standby replica's activator with N = 10, 100, 1000 sleeping apps: request → waking page, request → wake annotation written, a burst of repeated requests (docs/benchmarks.md#the-activator).
bench-activator:
    cargo build --release -p review-app-operator -p reviewapp-bench
    target/release/reviewapp-bench-activator --apps 10,100,1000

# Build queue benchmark: 1000 ReviewApps created at once, without a cap and with build.maxConcurrent 10; the driver plays the Job controller (docs/benchmarks.md#build-queue-1000-apps-at-cap-10).
bench-queue:
    cargo build --release -p review-app-operator -p reviewapp-bench
    target/release/reviewapp-bench --queue --apps 1000 --build-cap 10 --build-ms 50
