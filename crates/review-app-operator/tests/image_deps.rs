//! The production binary (`cargo build --no-default-features`, what the Dockerfile builds) does
//! not link the in-process API emulator. Asked of `cargo tree` (no build needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The crates `review-app-operator` links with `features`, as `cargo tree` resolves them.
fn linked_crates(features: &[&str]) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "review-app-operator",
            "--edges",
            "normal,build",
        ])
        .args(["--prefix", "none", "--locked", "--offline"])
        .args(features)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn without_default_features_the_emulator_is_not_linked() {
    let image = linked_crates(&["--no-default-features"]);
    assert!(
        image.contains("reviewapp-daemon") && image.contains("kube"),
        "{image:?}"
    );
    for emulator_only in ["reviewapp-testkit", "cel"] {
        assert!(
            !image.contains(emulator_only),
            "the production binary links {emulator_only}: keep `reviewapp-testkit` behind the `demo` feature"
        );
    }
    let default = linked_crates(&[]);
    assert!(default.contains("reviewapp-testkit"), "{default:?}");
}
