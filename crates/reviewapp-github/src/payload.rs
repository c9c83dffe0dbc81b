//! The parts of GitHub's webhook payloads and pull-request objects the component reads, and the
//! validation of every name taken from them before it is used in a URL, a Kubernetes object or
//! a log line. Fields not listed here are ignored, so GitHub adding fields never breaks parsing.

use serde::{Deserialize, Serialize};

/// A name from a payload that cannot be used. The message names the field and shows at most a
/// short prefix of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PayloadError {
    /// JSON path of the field, e.g. `pull_request.head.sha`.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> PayloadError {
    PayloadError {
        field,
        reason: reason.into(),
    }
}

/// At most 40 characters of `value`, with control characters escaped, for error messages.
fn shown(value: &str) -> String {
    let mut out: String = value.chars().take(40).collect();
    if value.chars().count() > 40 {
        out.push('…');
    }
    format!("{out:?}")
}

/// A repository, by owner login and name, validated (see [`RepoRef::new`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoRef {
    owner: String,
    name: String,
}

impl RepoRef {
    /// Checks GitHub's rules: an owner is 1-39 letters, digits and `-` (GitHub Enterprise also
    /// allows `_`), a repository name 1-100 letters, digits, `-`, `_` and `.`, other than `.` and
    /// `..`. Nothing else can reach a URL path.
    pub fn new(owner: &str, name: &str) -> Result<Self, PayloadError> {
        let owner_ok = (1..=39).contains(&owner.len())
            && owner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !owner_ok {
            return Err(invalid(
                "repository.owner.login",
                format!("not a GitHub login: {}", shown(owner)),
            ));
        }
        let name_ok = (1..=100).contains(&name.len())
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            return Err(invalid(
                "repository.name",
                format!("not a repository name: {}", shown(name)),
            ));
        }
        Ok(RepoRef {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }

    /// The owner's login.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The repository's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for RepoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// Checks a commit SHA: 40 (SHA-1) or 64 (SHA-256) hexadecimal digits.
pub fn check_sha(field: &'static str, sha: &str) -> Result<(), PayloadError> {
    if matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(invalid(field, format!("not a commit SHA: {}", shown(sha))))
    }
}

/// Checks a branch name: 1-255 bytes, no control characters or spaces (git's own rules are
/// stricter; this is what the component relies on).
pub fn check_branch(field: &'static str, branch: &str) -> Result<(), PayloadError> {
    if (1..=255).contains(&branch.len())
        && !branch.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("not a branch name: {}", shown(branch)),
        ))
    }
}

/// `{"login": ...}`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// User or organisation login.
    pub login: String,
}

/// A repository in a payload.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Repository {
    /// Numeric id (stable across renames).
    pub id: u64,
    /// Name without the owner.
    pub name: String,
    /// The account that owns it.
    pub owner: Owner,
    /// The default branch.
    #[serde(default)]
    pub default_branch: Option<String>,
}

/// The head or base of a pull request.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Branch {
    /// Branch name.
    #[serde(rename = "ref")]
    pub ref_: String,
    /// Commit SHA.
    pub sha: String,
    /// The repository; `null` for the head of a pull request whose fork was deleted.
    #[serde(default)]
    pub repo: Option<Repository>,
}

/// `{"name": ...}` of a label.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// The label's name.
    pub name: String,
}

/// A pull request, as in a webhook payload and as `GET /repos/{owner}/{repo}/pulls/{number}`
/// returns it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number in the base repository (`#42`).
    pub number: u64,
    /// `open` or `closed`.
    pub state: String,
    /// A draft pull request.
    #[serde(default)]
    pub draft: bool,
    /// The head branch (the changes).
    pub head: Branch,
    /// The base branch (where the changes go).
    pub base: Branch,
    /// Its labels (one of them may opt the pull request out).
    #[serde(default)]
    pub labels: Vec<Label>,
}

impl PullRequest {
    /// Whether the pull request comes from another repository than its base (a fork; a deleted
    /// fork counts as one).
    pub fn is_fork(&self) -> bool {
        let base = self.base.repo.as_ref().map(|r| r.id);
        self.head.repo.as_ref().map(|r| r.id) != base || base.is_none()
    }

    /// Checks every name the component uses: the head SHA and branch.
    pub fn check(&self) -> Result<(), PayloadError> {
        check_sha("pull_request.head.sha", &self.head.sha)?;
        check_branch("pull_request.head.ref", &self.head.ref_)?;
        if self.number == 0 {
            return Err(invalid("pull_request.number", "must be positive"));
        }
        Ok(())
    }
}

/// The `pull_request` event.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PullRequestEvent {
    /// `opened`, `synchronize`, `closed`, ...
    pub action: String,
    /// The pull request's number.
    pub number: u64,
    /// The pull request, as of the event.
    pub pull_request: PullRequest,
    /// The base repository.
    pub repository: Repository,
    /// The label added or removed (`labeled`, `unlabeled`).
    #[serde(default)]
    pub label: Option<Label>,
}

impl PullRequestEvent {
    /// The base repository, validated.
    pub fn repo(&self) -> Result<RepoRef, PayloadError> {
        RepoRef::new(&self.repository.owner.login, &self.repository.name)
    }

    /// Checks every name the component takes from the event.
    pub fn check(&self) -> Result<RepoRef, PayloadError> {
        let repo = self.repo()?;
        if self.number == 0 || self.number != self.pull_request.number {
            return Err(invalid(
                "number",
                "must be positive and equal pull_request.number",
            ));
        }
        self.pull_request.check()?;
        Ok(repo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for (owner, name) in [
            ("revelrylabs", "test_review_app"),
            ("a", "b.c-d_e"),
            ("Org-1", ".github"),
        ] {
            RepoRef::new(owner, name).unwrap();
        }
        for (owner, name, field) in [
            ("", "r", "owner"),
            ("a/b", "r", "owner"),
            (&"x".repeat(40), "r", "owner"),
            ("o", "", "name"),
            ("o", "..", "name"),
            ("o", "a/../b", "name"),
            ("o", "r?x=1", "name"),
            ("o", "r#", "name"),
            ("o", "r\n", "name"),
        ] {
            let err = RepoRef::new(owner, name).unwrap_err();
            assert!(err.field.contains(field), "{owner}/{name}: {err}");
        }
    }

    #[test]
    fn shas_and_branches() {
        check_sha("x", &"a".repeat(40)).unwrap();
        check_sha("x", &"F".repeat(64)).unwrap();
        assert!(check_sha("x", "abc").is_err());
        assert!(check_sha("x", &"g".repeat(40)).is_err());
        check_branch("x", "feature/x-1").unwrap();
        assert!(check_branch("x", "").is_err());
        assert!(check_branch("x", "a b").is_err());
        assert!(check_branch("x", "a\u{0}").is_err());
        let err = check_branch("x", &"b".repeat(300)).unwrap_err();
        assert!(err.to_string().len() < 100, "values are cut: {err}");
    }
}
