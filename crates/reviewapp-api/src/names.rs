//! Child names and label values.
//!
//! Compatible with the original operator for every name that fits (`test-review-app-678`,
//! `test-review-app-678--c8c9aa334a`, `test-review-app-678--db`, ...), and fixed where it was
//! wrong: results are always DNS-1123 labels (start and end alphanumeric, at most 63 characters;
//! app names also start with a letter, as Service names must), and a name that has to be
//! shortened carries a hash of the full identity so two long names never collide.

use sha2::{Digest, Sha256};

/// Longest DNS-1123 label (and label value).
pub const MAX_LABEL: usize = 63;
/// Longest database name: KubeDB and CloudNativePG append suffixes to it.
pub const MAX_DB_NAME: usize = 58;
const HASH_LEN: usize = 6;

/// Lowercases, replaces each run of characters outside `[a-z0-9-]` with one `-`, and trims `-`
/// from both ends. `sanitize("review_app") == "review-app"`.
pub fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_run = false;
    for ch in raw.trim().chars().flat_map(char::to_lowercase) {
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' {
            out.push(ch);
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    out.trim_matches('-').to_string()
}

/// Whether `s` is a DNS-1123 label: 1-63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain (names of ConfigMaps, Secrets, ...).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label value for `raw`: sanitised, and shortened with a hash suffix when longer than 63.
pub fn label_value(raw: &str) -> String {
    let clean = sanitize(raw);
    if clean.len() <= MAX_LABEL {
        return clean;
    }
    shorten(&clean, MAX_LABEL, raw)
}

/// Every name the operator derives from one `(repo, pr)` pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppNames {
    repo: String,
    pr: String,
    /// Deployment, Service, Ingress and container name: `test-review-app-678`.
    pub app: String,
    /// Database object: `test-review-app-678--db`.
    pub database: String,
    /// Database-copy Secret: `test-review-app-678--dbcopy`.
    pub db_copy_secret: String,
    /// Copied wildcard TLS Secret: `test-review-app-678--ingress-tls`.
    pub tls_secret: String,
    /// `ExternalName` Service naming the activator, the Ingress's backend while the app sleeps:
    /// `test-review-app-678--activator`.
    pub activator: String,
    /// Value of the `reviewtron.k8s.revelry.co/app` label: `test-review-app`.
    pub app_label: String,
    /// Value of the `reviewtron.k8s.revelry.co/build` label: `678`.
    pub build_label: String,
}

impl AppNames {
    /// Derives every name from the raw `repo` and `pr`.
    pub fn new(repo: &str, pr: &str) -> Self {
        Self {
            repo: repo.to_string(),
            pr: pr.to_string(),
            app: compose(repo, pr, None, MAX_LABEL),
            database: compose(repo, pr, Some("db"), MAX_DB_NAME),
            db_copy_secret: compose(repo, pr, Some("dbCopy"), MAX_LABEL),
            tls_secret: compose(repo, pr, Some("ingress-tls"), MAX_LABEL),
            activator: compose(repo, pr, Some("activator"), MAX_LABEL),
            app_label: label_value(repo),
            build_label: label_value(pr),
        }
    }

    /// Build Job for `commit`: `test-review-app-678--c8c9aa334a` (first 10 characters).
    pub fn build_job(&self, commit: &str) -> String {
        compose(&self.repo, &self.pr, Some(short_sha(commit)), MAX_LABEL)
    }

    /// Image reference for `commit`: `<registry>/<app>:<sha10>`, or `<app>:<sha10>` without a registry.
    pub fn image(&self, registry: &str, commit: &str) -> String {
        let registry = registry.trim().trim_end_matches('/');
        let tag = short_sha(commit).to_ascii_lowercase();
        if registry.is_empty() {
            format!("{}:{tag}", self.app)
        } else {
            format!("{registry}/{}:{tag}", self.app)
        }
    }

    /// Host name the app is served at: `<app>.<domain>`.
    pub fn host(&self, domain: &str) -> String {
        format!("{}.{}", self.app, domain.trim().trim_matches('.'))
    }
}

/// First 10 characters of a commit hash (the image tag and build Job suffix).
pub fn short_sha(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

/// `<repo>-<pr>[--<postfix>]`, at most `max` characters. When it does not fit, the repo part is
/// shortened (the PR number and postfix stay readable) and a hash of the raw inputs is inserted.
fn compose(repo: &str, pr: &str, postfix: Option<&str>, max: usize) -> String {
    let mut base = sanitize(repo);
    if base.is_empty() {
        base.push_str("app");
    } else if base.starts_with(|c: char| c.is_ascii_digit()) {
        base.insert_str(0, "app-");
    }
    let mut pr_part = sanitize(pr);
    if pr_part.is_empty() {
        pr_part = hash(pr); // validation rejects such a PR; the name must still be valid
    }
    let mut tail = format!("-{pr_part}");
    if let Some(postfix) = postfix {
        tail.push_str("--");
        tail.push_str(&sanitize(postfix));
    }
    if base.len() + tail.len() <= max {
        return base + &tail;
    }
    let identity = format!("{repo}\u{0}{pr}\u{0}{}", postfix.unwrap_or(""));
    let room = max.saturating_sub(tail.len() + 1 + HASH_LEN);
    if room >= 1 {
        // `base` is ASCII, so byte slicing is on character boundaries.
        let head = base[..room.min(base.len())].trim_end_matches('-');
        format!("{head}-{}{tail}", hash(&identity))
    } else {
        shorten(&(base + &tail), max, &identity)
    }
}

/// Cuts `clean` (sanitised, ASCII) to `max` characters including a `-<hash>` suffix.
fn shorten(clean: &str, max: usize, identity: &str) -> String {
    let keep = max - 1 - HASH_LEN;
    let head = clean[..keep.min(clean.len())].trim_matches('-');
    if head.is_empty() {
        hash(identity)
    } else {
        format!("{head}-{}", hash(identity))
    }
}

fn hash(identity: &str) -> String {
    let digest = Sha256::digest(identity.as_bytes());
    digest
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SHA: &str = "c8c9aa334a76677aa0be4ec0ebb08484367f952d";

    #[test]
    fn the_original_operators_examples_are_unchanged() {
        let names = AppNames::new("test_review_app", "678");
        assert_eq!(names.app, "test-review-app-678");
        assert_eq!(names.build_job(SHA), "test-review-app-678--c8c9aa334a");
        assert_eq!(names.database, "test-review-app-678--db");
        assert_eq!(names.db_copy_secret, "test-review-app-678--dbcopy");
        assert_eq!(names.tls_secret, "test-review-app-678--ingress-tls");
        assert_eq!(names.activator, "test-review-app-678--activator");
        assert_eq!(names.app_label, "test-review-app");
        assert_eq!(names.build_label, "678");
        assert_eq!(
            names.host("review.local"),
            "test-review-app-678.review.local"
        );
        assert_eq!(
            names.image("grossvogel", SHA),
            "grossvogel/test-review-app-678:c8c9aa334a"
        );
        assert_eq!(names.image("", SHA), "test-review-app-678:c8c9aa334a");
        assert_eq!(sanitize("review_app"), "review-app");
        assert_eq!(AppNames::new("app_name", "123").app, "app-name-123");
        let phoenix = AppNames::new("revelry_phoenix_app_template", "678");
        assert_eq!(phoenix.app, "revelry-phoenix-app-template-678");
    }

    #[test]
    fn fixes_the_original_sanitiser() {
        assert_eq!(sanitize("_leading and trailing_"), "leading-and-trailing");
        assert_eq!(
            AppNames::new("99problems", "1").app,
            "app-99problems-1",
            "Service names start with a letter"
        );
        assert_eq!(AppNames::new("___", "7").app, "app-7");
        let long = "a".repeat(80);
        let names = AppNames::new(&long, "12345");
        assert_eq!(names.app.len(), MAX_LABEL);
        assert!(names.app.ends_with("-12345"), "{}", names.app);
        assert!(names.database.len() <= MAX_DB_NAME && names.database.ends_with("-12345--db"));
        // A PR number too long for the original operator's slice arithmetic (it crashed) still
        // gives a label.
        let huge_pr = "9".repeat(70);
        assert!(is_dns_label(&AppNames::new("repo", &huge_pr).app));
    }

    #[test]
    fn truncated_names_of_different_repos_differ() {
        let a = AppNames::new(&format!("{}-alpha", "x".repeat(70)), "1");
        let b = AppNames::new(&format!("{}-bravo", "x".repeat(70)), "1");
        assert_ne!(a.app, b.app);
        assert_ne!(a.build_job(SHA), b.build_job(SHA));
        assert_ne!(a.app_label, b.app_label);
    }

    proptest! {
        #[test]
        fn every_name_is_a_valid_label(repo in "\\PC{0,90}", pr in "[0-9a-zA-Z_ .-]{1,80}", sha in "[0-9a-f]{40}") {
            let names = AppNames::new(&repo, &pr);
            for name in [&names.app, &names.db_copy_secret, &names.tls_secret, &names.activator, &names.build_job(&sha)] {
                prop_assert!(is_dns_label(name), "{name:?}");
                prop_assert!(name.starts_with(|c: char| c.is_ascii_lowercase()), "{name:?}");
            }
            prop_assert!(is_dns_label(&names.database) && names.database.len() <= MAX_DB_NAME);
            prop_assert!(names.app_label.len() <= MAX_LABEL && names.build_label.len() <= MAX_LABEL);
            prop_assert!(!names.app_label.starts_with('-') && !names.app_label.ends_with('-'));
            let auth = format!("{}-auth", names.database);
            prop_assert!(auth.len() <= MAX_LABEL);
        }

        #[test]
        fn names_are_deterministic(repo in "[a-z_]{0,100}", pr in "[0-9]{1,8}") {
            prop_assert_eq!(AppNames::new(&repo, &pr), AppNames::new(&repo, &pr));
        }
    }
}
