//! The name of the `ReviewApp` of one pull request.
//!
//! `<owner>.<repo>.<pr>` (lowercased: GitHub names are case-insensitive), for example
//! `revelrylabs.review-app-operator.42`: a DNS-1123 subdomain, as a cluster-scoped object's name
//! must be. An owner never contains a dot and the PR is the last, all-digit label, so the name
//! spells the pull request back exactly: two pull requests never share a name.
//!
//! When the owner or the repository cannot be written that way (GitHub allows `_`, leading dots
//! and `--.` sequences that DNS does not), the parts are sanitised
//! ([`reviewapp_api::names::sanitize`]) and a last label `h<hash>` is added: 16 hexadecimal
//! digits of the SHA-256 of the exact lowercased `owner/repo#pr`. Such a name cannot equal a
//! name of the first kind (its last label is not all digits), and two of them are equal only if
//! 64 bits of SHA-256 collide.

use reviewapp_api::names::{MAX_LABEL, is_dns_label, is_dns_subdomain, sanitize};
use sha2::{Digest, Sha256};

use crate::payload::RepoRef;

/// The `ReviewApp` name of pull request `pr` of `repo`.
pub fn review_app_name(repo: &RepoRef, pr: u64) -> String {
    let owner = repo.owner().to_ascii_lowercase();
    let name = repo.name().to_ascii_lowercase();
    let exact = format!("{owner}.{name}.{pr}");
    if is_dns_label(&owner) && name.split('.').all(is_dns_label) && is_dns_subdomain(&exact) {
        return exact;
    }
    let part = |raw: &str, fallback: &str| {
        let clean = sanitize(raw);
        let clean = clean[..clean.len().min(MAX_LABEL)].trim_end_matches('-');
        if clean.is_empty() {
            fallback.to_string()
        } else {
            clean.to_string()
        }
    };
    let digest = Sha256::digest(format!("{owner}/{name}#{pr}").as_bytes());
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}.{}.{pr}.h{hash}",
        part(&owner, "owner"),
        part(&name, "repo")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(owner: &str, repo: &str, pr: u64) -> String {
        review_app_name(&RepoRef::new(owner, repo).unwrap(), pr)
    }

    #[test]
    fn readable_when_possible() {
        assert_eq!(
            name("revelrylabs", "review-app-operator", 42),
            "revelrylabs.review-app-operator.42"
        );
        assert_eq!(name("RevelryLabs", "My.Repo", 1), "revelrylabs.my.repo.1");
        let hashed = name("revelrylabs", "test_review_app", 678);
        assert!(
            hashed.starts_with("revelrylabs.test-review-app.678.h"),
            "{hashed}"
        );
        assert_eq!(hashed.len(), "revelrylabs.test-review-app.678.h".len() + 16);
    }

    #[test]
    fn repositories_that_sanitise_alike_differ() {
        let names = [
            name("o", "my_repo", 1),
            name("o", "my-repo", 1),
            name("o", "my.repo", 1),
            name("o", "my--repo", 1),
            name("o", "my__repo", 1),
            name("o", "_my_repo", 1),
            name("o-my", "repo", 1),
            name("o", "my-repo", 11),
            name("o", "my-repo.1", 1),
        ];
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    proptest! {
        #[test]
        fn always_a_subdomain(
            owner in "[A-Za-z0-9_-]{1,39}",
            repo in "[A-Za-z0-9._-]{1,100}",
            pr in 1u64..u64::MAX,
        ) {
            prop_assume!(repo != "." && repo != "..");
            let n = name(&owner, &repo, pr);
            prop_assert!(is_dns_subdomain(&n), "{n}");
            let (tail, hashed) = (format!(".{pr}"), format!(".{pr}.h"));
            prop_assert!(n.ends_with(&tail) || n.contains(&hashed), "{}", n);
        }

        #[test]
        fn distinct_pull_requests_have_distinct_names(
            a in ("[a-c_-]{1,4}", "[a-c._-]{1,5}", 1u64..4),
            b in ("[a-c_-]{1,4}", "[a-c._-]{1,5}", 1u64..4),
        ) {
            prop_assume!(!matches!(a.1.as_str(), "." | "..") && !matches!(b.1.as_str(), "." | ".."));
            let same = a.0.eq_ignore_ascii_case(&b.0) && a.1.eq_ignore_ascii_case(&b.1) && a.2 == b.2;
            prop_assert_eq!(name(&a.0, &a.1, a.2) == name(&b.0, &b.1, b.2), same);
        }
    }
}
