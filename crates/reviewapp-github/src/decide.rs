//! What a pull request should have: a `ReviewApp` with this spec, none (and why), or an error to
//! show on the pull request. Pure: the pull request (as the API returns it now), the review
//! configuration file and the settings in, the decision out.
//!
//! The rules, in order (documented in `docs/github.md`):
//!
//! 1. a closed pull request has no app;
//! 2. a pull request labelled with `optOutLabel` has none;
//! 3. a draft has none unless `buildDrafts`;
//! 4. a pull request from a fork has none unless `buildForks`; with it, the configuration is
//!    read from the base repository's default branch, never from the fork;
//! 5. a repository without the configuration file has none (it did not opt in);
//! 6. a head branch matching `ignoreBranches` has none;
//! 7. otherwise the app builds the head commit with the configuration as written.

use regex::RegexBuilder;
use reviewapp_api::spec::ReviewConfig;
use serde_json::{Value, json};

use crate::config::GithubConfig;
use crate::payload::{PullRequest, RepoRef};

/// Largest configuration file read (a `ReviewApp` must fit in one etcd object).
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;

/// Why a pull request has no review app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The pull request is closed (or merged).
    Closed,
    /// It carries the opt-out label.
    OptedOut,
    /// It is a draft.
    Draft,
    /// It comes from a fork.
    Fork,
    /// The repository has no configuration file.
    NoConfig,
    /// The head branch matches this `ignoreBranches` entry.
    IgnoredBranch(String),
}

impl Skip {
    /// A short word for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Skip::Closed => "closed",
            Skip::OptedOut => "opted_out",
            Skip::Draft => "draft",
            Skip::Fork => "fork",
            Skip::NoConfig => "no_config",
            Skip::IgnoredBranch(_) => "ignored_branch",
        }
    }
}

/// Where to read the configuration file, when the pull request may have an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSource {
    /// The git ref: the head SHA, or the base repository's default branch for a fork.
    pub git_ref: String,
}

/// Rules 1-4: whether to read the configuration at all, and where.
pub fn config_source(pr: &PullRequest, settings: &GithubConfig) -> Result<ConfigSource, Skip> {
    if pr.state != "open" {
        return Err(Skip::Closed);
    }
    let label = settings.opt_out_label.trim();
    if !label.is_empty() && pr.labels.iter().any(|l| l.name == label) {
        return Err(Skip::OptedOut);
    }
    if pr.draft && !settings.build_drafts {
        return Err(Skip::Draft);
    }
    if pr.is_fork() {
        if !settings.build_forks {
            return Err(Skip::Fork);
        }
        let default_branch = pr
            .base
            .repo
            .as_ref()
            .and_then(|r| r.default_branch.clone())
            .unwrap_or_else(|| pr.base.ref_.clone());
        return Ok(ConfigSource {
            git_ref: default_branch,
        });
    }
    Ok(ConfigSource {
        git_ref: pr.head.sha.clone(),
    })
}

/// What the pull request should have.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired {
    /// No review app.
    Absent(Skip),
    /// A review app with this `spec` (JSON, the configuration as written).
    Present(Value),
    /// The configuration file cannot be used: show this on the pull request and change nothing.
    Invalid(String),
}

/// Rules 5-7, given the file's content (`None`: no such file).
pub fn desired(
    pr: &PullRequest,
    repo: &RepoRef,
    file: Option<&[u8]>,
    settings: &GithubConfig,
    tarball_url: &str,
) -> Desired {
    let Some(bytes) = file else {
        return Desired::Absent(Skip::NoConfig);
    };
    let config = match parse_config(bytes, &settings.config_path) {
        Ok(config) => config,
        Err(message) => return Desired::Invalid(message),
    };
    match ignored(&config, &pr.head.ref_, &settings.config_path) {
        Ok(Some(entry)) => return Desired::Absent(Skip::IgnoredBranch(entry)),
        Ok(None) => {}
        Err(message) => return Desired::Invalid(message),
    }
    Desired::Present(json!({
        "repoOwner": repo.owner(),
        "repo": repo.name(),
        "branch": pr.head.ref_,
        "pr": pr.number.to_string(),
        "commitHash": pr.head.sha.to_ascii_lowercase(),
        "tarballUrl": tarball_url,
        "config": config,
    }))
}

/// The file as JSON: a YAML mapping whose known keys have the types the CRD requires (the API
/// server would reject anything else). Unknown keys are kept.
pub fn parse_config(bytes: &[u8], path: &str) -> Result<Value, String> {
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "{path} is larger than {} KiB",
            MAX_CONFIG_BYTES / 1024
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8"))?;
    let value: Value =
        serde_yaml::from_str(text).map_err(|e| format!("{path} is not valid YAML: {e}"))?;
    if !value.is_object() {
        return Err(format!("{path} must be a mapping"));
    }
    serde_path_to_error::deserialize::<_, ReviewConfig>(value.clone())
        .map_err(|e| format!("{path}: {}: {}", e.path(), e.inner()))?;
    Ok(value)
}

/// The `ignoreBranches` entry matching `branch`: a plain entry matches the exact name, an entry
/// written `/regex/` matches when the regular expression finds a match anywhere in the name
/// (as the original JavaScript `RegExp.test` did; anchor it with `^...$` to match the whole name).
pub fn ignored(config: &Value, branch: &str, path: &str) -> Result<Option<String>, String> {
    let Some(entries) = config.get("ignoreBranches").and_then(Value::as_array) else {
        return Ok(None);
    };
    for entry in entries.iter().filter_map(Value::as_str) {
        let pattern = entry
            .strip_prefix('/')
            .and_then(|rest| rest.strip_suffix('/'))
            .filter(|p| !p.is_empty());
        let hit = match pattern {
            Some(pattern) => RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("{path}: ignoreBranches entry {entry:?}: {e}"))?
                .is_match(branch),
            None => entry == branch,
        };
        if hit {
            return Ok(Some(entry.to_string()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{Branch, Label, Owner, Repository};

    const SHA: &str = "c8c9aa334a76677aa0be4ec0ebb08484367f952d";

    fn repo(id: u64) -> Repository {
        Repository {
            id,
            name: "app".into(),
            owner: Owner {
                login: "org".into(),
            },
            default_branch: Some("main".into()),
        }
    }

    fn pr() -> PullRequest {
        PullRequest {
            number: 7,
            state: "open".into(),
            draft: false,
            head: Branch {
                ref_: "feature".into(),
                sha: SHA.into(),
                repo: Some(repo(1)),
            },
            base: Branch {
                ref_: "main".into(),
                sha: "0".repeat(40),
                repo: Some(repo(1)),
            },
            labels: vec![],
        }
    }

    const FILE: &[u8] =
        b"namespace: review\napplicationPort: 4000\nfutureKey: {nested: true}\nignoreBranches: [\"/^dependabot/\", skip-me]\n";

    fn decide(pr: &PullRequest, file: Option<&[u8]>, settings: &GithubConfig) -> Desired {
        let repo = RepoRef::new("org", "app").unwrap();
        match config_source(pr, settings) {
            Err(skip) => Desired::Absent(skip),
            Ok(_) => desired(pr, &repo, file, settings, "https://t/tarball"),
        }
    }

    #[test]
    fn an_open_pull_request_with_a_config_gets_an_app() {
        let settings = GithubConfig::default();
        assert_eq!(
            config_source(&pr(), &settings).unwrap().git_ref,
            SHA,
            "read at the head commit"
        );
        let Desired::Present(spec) = decide(&pr(), Some(FILE), &settings) else {
            panic!("no app");
        };
        assert_eq!(spec["pr"], "7");
        assert_eq!(spec["repoOwner"], "org");
        assert_eq!(spec["repo"], "app");
        assert_eq!(spec["branch"], "feature");
        assert_eq!(spec["commitHash"], SHA);
        assert_eq!(spec["tarballUrl"], "https://t/tarball");
        assert_eq!(spec["config"]["applicationPort"], 4000);
        assert_eq!(
            spec["config"]["futureKey"]["nested"], true,
            "unknown keys are kept"
        );
    }

    #[test]
    fn every_skip_rule() {
        let settings = GithubConfig::default();
        let mut closed = pr();
        closed.state = "closed".into();
        assert_eq!(
            decide(&closed, Some(FILE), &settings),
            Desired::Absent(Skip::Closed)
        );

        let mut labelled = pr();
        labelled.labels.push(Label {
            name: "no-review-app".into(),
        });
        assert_eq!(
            decide(&labelled, Some(FILE), &settings),
            Desired::Absent(Skip::OptedOut)
        );

        let mut draft = pr();
        draft.draft = true;
        assert_eq!(
            decide(&draft, Some(FILE), &settings),
            Desired::Absent(Skip::Draft)
        );
        let drafts = GithubConfig {
            build_drafts: true,
            ..GithubConfig::default()
        };
        assert!(matches!(
            decide(&draft, Some(FILE), &drafts),
            Desired::Present(_)
        ));

        assert_eq!(
            decide(&pr(), None, &settings),
            Desired::Absent(Skip::NoConfig)
        );

        for branch in ["skip-me", "dependabot/npm/x"] {
            let mut ignored = pr();
            ignored.head.ref_ = branch.into();
            assert!(
                matches!(
                    decide(&ignored, Some(FILE), &settings),
                    Desired::Absent(Skip::IgnoredBranch(_))
                ),
                "{branch}"
            );
        }
        for branch in ["skip-me-not", "my-dependabot"] {
            let mut kept = pr();
            kept.head.ref_ = branch.into();
            assert!(
                matches!(decide(&kept, Some(FILE), &settings), Desired::Present(_)),
                "{branch}"
            );
        }
    }

    #[test]
    fn forks_are_skipped_or_configured_from_the_base_default_branch() {
        let mut fork = pr();
        fork.head.repo = Some(repo(99));
        assert!(fork.is_fork());
        let settings = GithubConfig::default();
        assert_eq!(config_source(&fork, &settings), Err(Skip::Fork));
        let forks = GithubConfig {
            build_forks: true,
            ..GithubConfig::default()
        };
        assert_eq!(config_source(&fork, &forks).unwrap().git_ref, "main");
        let mut deleted_fork = pr();
        deleted_fork.head.repo = None;
        assert!(deleted_fork.is_fork());
    }

    #[test]
    fn the_original_samples_regex_is_unanchored() {
        let config = serde_json::json!({"ignoreBranches": ["/dependabot.*/", "ignore-me"]});
        assert!(ignored(&config, "dependabot/cargo", "f").unwrap().is_some());
        assert!(ignored(&config, "x-dependabot", "f").unwrap().is_some());
        assert!(ignored(&config, "ignore-me", "f").unwrap().is_some());
        assert!(ignored(&config, "ignore-me-2", "f").unwrap().is_none());
        assert!(ignored(&config, "/", "f").unwrap().is_none());
    }

    #[test]
    fn unusable_files_are_errors_that_name_the_problem() {
        let settings = GithubConfig::default();
        for (file, expected) in [
            (&b"- a\n- b\n"[..], "must be a mapping"),
            (b"applicationPort: [1\n", "not valid YAML"),
            (b"applicationPort: eighty\n", "applicationPort"),
            (b"\xff\xfe", "not UTF-8"),
            (b"ignoreBranches: ['/(/']\n", "ignoreBranches"),
        ] {
            match decide(&pr(), Some(file), &settings) {
                Desired::Invalid(message) => {
                    assert!(message.contains(expected), "{message}");
                    assert!(message.contains(".review_bot.yml"), "{message}");
                }
                other => panic!("{expected}: {other:?}"),
            }
        }
        let big = vec![b'a'; MAX_CONFIG_BYTES + 1];
        assert!(matches!(
            decide(&pr(), Some(&big), &settings),
            Desired::Invalid(_)
        ));
    }
}
