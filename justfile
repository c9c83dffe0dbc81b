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

# Print what the operator would apply for a ReviewApp file (default: the seed's sample).
plan file="dev/samples/reviewapp.yaml" *args="":
    cargo run -q -p review-app-operator -- plan -f {{file}} {{args}}
